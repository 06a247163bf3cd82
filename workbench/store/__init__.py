"""Storage: the run store (`runs`), the artifact store (`artifacts`), the per-sample schema
(`samples`) and what they share (`publish`: ids, atomic JSON, digests, one-rename publish)."""
from workbench.store.publish import PARTIAL, validate_id, write_json_atomic
from workbench.store.runs import PartialRun, Run, RunStore, validate_run_id

__all__ = ["PARTIAL", "PartialRun", "Run", "RunStore", "validate_id", "validate_run_id", "write_json_atomic"]
