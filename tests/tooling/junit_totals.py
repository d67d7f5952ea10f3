"""Print one closing line adding up JUnit XML results: ``total: N passed, N failed, N skipped``.

Usage: python junit_totals.py EXTRA_PASSED EXTRA_FAILED [FILE.xml ...]
The two numbers count lanes that write no JUnit XML (each lane is one case).
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET


def count(path: str) -> tuple[int, int, int]:
    """Return (passed, failed, skipped) test cases in one JUnit XML file."""
    passed = failed = skipped = 0
    for case in ET.parse(path).getroot().iter('testcase'):
        kinds = {child.tag for child in case}
        if kinds & {'failure', 'error'}:
            failed += 1
        elif 'skipped' in kinds:
            skipped += 1
        else:
            passed += 1
    return passed, failed, skipped


def main() -> None:
    """Add up the files named on the command line and print the closing line."""
    passed, failed = int(sys.argv[1]), int(sys.argv[2])
    skipped = 0
    for path in sys.argv[3:]:
        if not os.path.exists(path):
            continue
        file_passed, file_failed, file_skipped = count(path)
        passed += file_passed
        failed += file_failed
        skipped += file_skipped
    print('total: %d passed, %d failed, %d skipped' % (passed, failed, skipped))


if __name__ == '__main__':
    main()
