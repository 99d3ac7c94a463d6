# Prints the failed tests of the TRX files under a folder: name, message, stack trace and output, a few lines each.
# tests/run.sh runs it only when `dotnet test` failed, so that CI's quiet log says why without printing every test.
# Usage: python3 tests/failures.py RESULTS_DIR
import glob, sys
import xml.etree.ElementTree as ET

NS = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}


def lines(text, limit):
    text = (text or "").strip().splitlines()
    return text[:limit] + ([f"... ({len(text) - limit} more lines)"] if len(text) > limit else [])


for path in sorted(glob.glob(f"{sys.argv[1]}/**/*.trx", recursive=True)):
    for result in ET.parse(path).getroot().iterfind(".//t:UnitTestResult", NS):
        if result.get("outcome") != "Failed":
            continue
        print(f"FAILED {result.get('testName')} ({result.get('duration')})")
        output = result.find("t:Output", NS)
        for tag, limit in (("t:ErrorInfo/t:Message", 20), ("t:ErrorInfo/t:StackTrace", 12), ("t:StdOut", 20)):
            node = output.find(tag, NS) if output is not None else None
            for line in lines(node.text if node is not None else "", limit):
                print(f"    {line}")
