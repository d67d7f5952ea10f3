"""Print the closing lines adding up JUnit XML results.

``total: N passed, N failed, N skipped`` for people, then the same count in pytest's own
summary form (``==== N passed, N failed in S.SSs ====``, zero counts left out) so that tools
that read test runners' output see the whole run as one result.

Usage: python junit_totals.py SECONDS EXTRA_PASSED EXTRA_FAILED [FILE.xml ...]
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
    seconds, passed, failed = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    skipped = 0
    for path in sys.argv[4:]:
        if not os.path.exists(path):
            continue
        file_passed, file_failed, file_skipped = count(path)
        passed += file_passed
        failed += file_failed
        skipped += file_skipped
    print('total: %d passed, %d failed, %d skipped' % (passed, failed, skipped))
    print(pytest_summary(passed, failed, skipped, seconds))


def pytest_summary(passed: int, failed: int, skipped: int, seconds: float) -> str:
    """The count as pytest's last line writes it: ``=== 3 failed, 400 passed in 9.00s ===``."""
    parts = ['%d %s' % (n, word) for n, word in ((failed, 'failed'), (passed, 'passed'), (skipped, 'skipped')) if n]
    text = ' %s in %.2fs ' % (', '.join(parts) or 'no tests ran', seconds)
    return text.center(80, '=')


if __name__ == '__main__':
    main()
