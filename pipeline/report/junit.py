"""The checks as JUnit XML (junit.xml), the format CI systems (GitLab, Jenkins, GitHub actions) read."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from pipeline.report.model import RunReport, fmt


def render_junit(report: RunReport, seconds: float = 0.0) -> str:
    """One <testcase> per check; a failed check carries a <failure> with the figures."""
    checks = report.checks or []
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name="nerve.regress", tests=str(len(checks)),
                          failures=str(len(report.failures)), errors="0", skipped="0", time=f"{seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    for name, value in (("output", report.out_dir), ("baseline", report.baseline_path),
                        ("fingerprint", str(report.summary.get("fingerprint"))),
                        ("miou", fmt(report.summary["miou"]))):
        ET.SubElement(props, "property", name=name, value=value)
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname="nerve.regress", name=c.name, time="0")
        if not c.passed:
            failure = ET.SubElement(case, "failure", message=c.message, type="regression")
            failure.text = f"measured {fmt(c.measured)}, baseline {fmt(c.baseline)}, tolerance {fmt(c.tolerance)}"
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
