package testutil

import (
	"os/exec"
	"strings"
	"testing"
)

// debianPython is the interpreter of Debian's python3-jsonschema
// (scripts/install-deps.sh installs it): the judge of JSON documents
// against their official schemas, independent of Kiln's Go code.
const debianPython = "/usr/bin/python3"

// validateScript validates argv[2] against the schema argv[1], resolving
// $refs to the other schema files of its directory by their $id or file
// name, and checking formats where the installed modules can.
const validateScript = `
import json, pathlib, sys
import jsonschema
schema_path, doc_path = pathlib.Path(sys.argv[1]), sys.argv[2]
schema = json.loads(schema_path.read_text())
store = {}
for p in schema_path.parent.glob("*.json"):
    s = json.loads(p.read_text())
    store[p.name] = s
    if isinstance(s, dict) and "$id" in s:
        store[s["$id"]] = s
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
v = cls(schema, resolver=jsonschema.RefResolver.from_schema(schema, store=store), format_checker=cls.FORMAT_CHECKER)
errors = sorted(v.iter_errors(json.load(open(doc_path))), key=lambda e: list(e.absolute_path))
for e in errors[:20]:
    print("/".join(str(x) for x in e.absolute_path) or "(top)", ":", e.message[:400])
print("jsonschema", jsonschema.__version__ if hasattr(jsonschema, "__version__") else "", ":", len(errors), "error(s)")
sys.exit(1 if errors else 0)
`

// ValidateJSONSchema fails t unless the JSON document at doc is valid
// under the JSON schema at schema, as Debian's python3-jsonschema judges.
// Without that module the test skips, or fails when KILN_REQUIRE_QEMU=1.
func ValidateJSONSchema(t testing.TB, schema, doc string) {
	t.Helper()
	if err := exec.Command(debianPython, "-c", "import jsonschema").Run(); err != nil {
		msg := "Debian's python3-jsonschema is missing (apt-get install python3-jsonschema python3-rfc3987 python3-idna, or scripts/install-deps.sh)"
		if Strict() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out, err := exec.Command(debianPython, "-W", "ignore::DeprecationWarning", "-c", validateScript, schema, doc).CombinedOutput()
	if err != nil {
		t.Fatalf("%s is not valid under %s:\n%s", doc, schema, strings.TrimSpace(string(out)))
	}
	t.Logf("%s: valid under %s (%s)", doc, schema, strings.TrimSpace(string(out)))
}
