"""The claims of the MERT-vs-VGGish comparison that started mtbc, as data, and their audit
(notebook 08, ``docs/claims.md``).

:data:`CLAIMS` holds one :class:`Claim` each (:mod:`mtbc.claims.data`); :func:`audit` gives
every claim a :class:`Verdict` from an :class:`Evidence` (:mod:`mtbc.claims.audit`), which
:func:`evidence_from_study` gathers for a run (:mod:`mtbc.claims.evidence`) with the
architecture facts of :func:`architecture_facts` (:mod:`mtbc.claims.facts`) and the records
notebooks 09 and 11 left in the run folder (:func:`run_files`; their claims are decided in
:mod:`mtbc.claims.measured`).

Examples
--------
>>> from mtbc import claims
>>> table = claims.audit_table(claims.Evidence())
>>> set(table["verdict"]) <= set(claims.VERDICTS)
True
"""

from mtbc.claims.audit import (
    Evidence,
    Verdict,
    audit,
    audit_table,
    claims_frame,
    claims_summary,
    verdict_counts,
)
from mtbc.claims.data import (
    CHECKS,
    CLAIMS,
    CONFIRMED,
    CONTRADICTED,
    DATASET_PARAMS,
    NOT_TESTABLE,
    VERDICTS,
    Claim,
)
from mtbc.claims.evidence import evidence_from_study, run_files, run_files_note
from mtbc.claims.facts import architecture_facts

__all__ = ["CHECKS", "CLAIMS", "CONFIRMED", "CONTRADICTED", "DATASET_PARAMS", "NOT_TESTABLE",
           "VERDICTS", "Claim", "Evidence", "Verdict", "architecture_facts", "audit",
           "audit_table", "claims_frame", "claims_summary", "evidence_from_study",
           "run_files", "run_files_note", "verdict_counts"]
