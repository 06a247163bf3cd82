"""Per-sample scorers the benchmark tasks call: refusal judges (`refusal`), degeneration metrics
(`degeneration`) and sandboxed code execution for HumanEval (`codeeval`)."""
