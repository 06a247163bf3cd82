/* Cell formatters and renderers for the dashboard's AG Grids (referenced by name from the column
   definitions in pages.py). Values stay numbers, so sorting and number filters work; only the text
   shown is formatted. Everything returned is text or a React element with text children, never HTML. */
var dagfuncs = (window.dashAgGridFunctions = window.dashAgGridFunctions || {});
var dagcomponentfuncs = (window.dashAgGridComponentFunctions = window.dashAgGridComponentFunctions || {});

function wbMissing(v) {
  return v === null || v === undefined || (typeof v === "number" && isNaN(v));
}

dagfuncs.wbNum = function (v, digits) {
  return wbMissing(v) ? "–" : Number(v).toFixed(digits === undefined ? 3 : digits);
};

dagfuncs.wbSigned = function (v, digits) {
  if (wbMissing(v)) return "–";
  var s = Number(v).toFixed(digits === undefined ? 3 : digits);
  return v > 0 ? "+" + s : s;
};

dagfuncs.wbP = function (v) {
  if (wbMissing(v)) return "–";
  return v < 0.001 ? Number(v).toExponential(1) : Number(v).toFixed(3);
};

/* leaderboard cell: "0.412 [0.301, 0.520]" from <field>, <field>_lo, <field>_hi */
dagfuncs.wbScoreCI = function (params) {
  var f = params.colDef.field, d = params.data || {};
  if (wbMissing(params.value)) return "–";
  return dagfuncs.wbNum(params.value) + " [" + dagfuncs.wbNum(d[f + "_lo"]) + ", " + dagfuncs.wbNum(d[f + "_hi"]) + "]";
};

dagfuncs.wbScoreTip = function (params) {
  var f = params.colDef.field, d = params.data || {};
  if (wbMissing(params.value)) return null;
  return d[f + "_label"] + " = " + dagfuncs.wbScoreCI(params) + (d[f + "_best"] ? " (best shown)" : "");
};

/* compare grid: the paired CI of a row, "[-0.020, +0.045]" */
dagfuncs.wbCI = function (params) {
  var d = params.data || {};
  if (wbMissing(d.ci95_low)) return "–";
  return "[" + dagfuncs.wbSigned(d.ci95_low) + ", " + dagfuncs.wbSigned(d.ci95_high) + "]";
};

/* a link to a page of this app (value: a path built by the server) */
dagcomponentfuncs.WbLink = function (props) {
  if (!props.value || String(props.value).charAt(0) !== "/") return null;
  var text = (props.colDef.cellRendererParams && props.colDef.cellRendererParams.text) || "open";
  return React.createElement("a", {href: props.value, className: "grid-link"}, text);
};
