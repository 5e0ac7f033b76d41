"""Known vulnerabilities of the installed dependencies (pip-audit), for CI: loud, never silent, never hanging.

Exit 1 when pip-audit reports a vulnerability that .ci/audit-ignore does not explain. When the vulnerability
service cannot be reached, or cannot audit some dependencies (a mirror without their versions), it says
so, how many, and exits 0: an offline machine must still be able to run the tests.

.ci/audit-ignore: one vulnerability a line, ``ID  why it does not apply`` (``#`` starts a comment).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
IGNORE = ROOT / ".ci" / "audit-ignore"
TIMEOUT = 300


def ignored() -> dict[str, str]:
    """The vulnerability ids that do not apply, with why."""
    out = {}
    if IGNORE.exists():
        for line in IGNORE.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                vuln, _, why = line.partition(" ")
                out[vuln] = why.strip() or "(no reason given)"
    return out


def summarize(report: dict[str, Any], skip: dict[str, str]) -> tuple[list[str], int]:
    """Lines to print and the exit status, from pip-audit's JSON report."""
    deps = [d for d in report.get("dependencies", []) if "editable" not in str(d.get("skip_reason", ""))]
    not_audited = [d for d in deps if "skip_reason" in d]
    audited = [d for d in deps if "skip_reason" not in d]
    lines = [f"pip-audit: {len(audited)} of {len(deps)} installed dependencies audited"]
    if not_audited:
        reasons = sorted({str(d["skip_reason"]).split(":", 1)[0] for d in not_audited})
        lines.append(f"pip-audit: NOT AUDITED: {len(not_audited)} dependencies ({'; '.join(reasons)}), e.g. "
                     + ", ".join(str(d["name"]) for d in not_audited[:5]))
    status = 0
    for dep in audited:
        for vuln in dep.get("vulns", []):
            vid = str(vuln["id"])
            fixed = ", ".join(vuln.get("fix_versions", [])) or "none yet"
            if vid in skip:
                lines.append(f"pip-audit: {dep['name']} {dep['version']}: {vid} does not apply: {skip[vid]}")
            else:
                status = 1
                lines.append(f"pip-audit: VULNERABLE: {dep['name']} {dep['version']}: {vid} (fixed in {fixed}); "
                             f"upgrade, or explain in .ci/audit-ignore why it does not apply")
    if status == 0 and audited:
        lines.append("pip-audit: no known vulnerability in the audited dependencies")
    return lines, status


def main() -> int:
    command = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off", "--skip-editable"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        print(f"pip-audit: NOT RUN: no answer from the vulnerability service within {TIMEOUT}s")
        return 0
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"pip-audit: NOT RUN: the vulnerability service is unreachable or failed: {last[:300]}")
        return 0
    lines, status = summarize(report, ignored())
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    sys.exit(main())
