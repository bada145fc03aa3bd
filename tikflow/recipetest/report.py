"""How recipe test results read: one line per case, the differences under a failed one; JUnit XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from tikflow.recipetest.runner import CaseReport

__all__ = ["format_reports", "junit_xml"]


def format_reports(reports: Sequence[CaseReport]) -> list[str]:
    """`PASS`/`FAIL` per case (FILE:LINE, recipe, name), each difference indented, then the totals."""
    lines: list[str] = []
    for report in reports:
        mark = "PASS" if report.passed else "FAIL"
        lines.append(f"{mark} {report.file}:{report.line}: {report.recipe}: {report.name}")
        lines += [f"    {difference}" for difference in report.differences]
    failed = sum(not r.passed for r in reports)
    lines.append(f"{len(reports) - failed} passed, {failed} failed")
    return lines


def junit_xml(reports: Sequence[CaseReport]) -> str:
    """The results as JUnit XML: one `testsuite` per test file, one `testcase` per case."""
    root = ET.Element("testsuites", name="tikflow test")
    by_file: dict[str, list[CaseReport]] = {}
    for report in reports:
        by_file.setdefault(report.file, []).append(report)
    for file, cases in by_file.items():
        suite = ET.SubElement(
            root,
            "testsuite",
            name=file,
            tests=str(len(cases)),
            failures=str(sum(not c.passed for c in cases)),
            errors="0",
            time=f"{sum(c.seconds for c in cases):.3f}",
        )
        for case in cases:
            element = ET.SubElement(
                suite,
                "testcase",
                classname=case.recipe,
                name=case.name,
                file=file,
                line=str(case.line),
                time=f"{case.seconds:.3f}",
            )
            if not case.passed:
                failure = ET.SubElement(element, "failure", message=str(case.differences[0]))
                failure.text = "\n".join(str(d) for d in case.differences)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
