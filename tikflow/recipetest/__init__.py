"""`tikflow test`: recipe tests written by users, run in-process with canned results and no network.

`spec` reads a test file (FILE:LINE:COL problems, as the recipe loader reports them), `fake`
is the activity seam (canned results, every call recorded), `runner` runs the cases on
Temporal's time-skipping test server and compares, `report` prints the diff and JUnit XML.
"""

from tikflow.recipetest.fake import CannedActivities, RecordedCall, step_name
from tikflow.recipetest.report import format_reports, junit_xml
from tikflow.recipetest.runner import CaseReport, Difference, compare, run_test_files
from tikflow.recipetest.spec import TEST_SUFFIXES, LoadedTestFile, TestFile, is_test_file, load_test_file

__all__ = [
    "TEST_SUFFIXES",
    "CannedActivities",
    "CaseReport",
    "Difference",
    "LoadedTestFile",
    "RecordedCall",
    "TestFile",
    "compare",
    "format_reports",
    "is_test_file",
    "junit_xml",
    "load_test_file",
    "run_test_files",
    "step_name",
]
