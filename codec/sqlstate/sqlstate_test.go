package sqlstate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestKnownCodes(t *testing.T) {
	for _, tc := range []struct {
		code       Code
		want, name string
		class      string
	}{
		{ProtocolViolation, "08P01", "protocol_violation", "08"},
		{InvalidAuthorizationSpecification, "28000", "invalid_authorization_specification", "28"},
		{InvalidPassword, "28P01", "invalid_password", "28"},
		{TooManyConnections, "53300", "too_many_connections", "53"},
		{ConnectionFailure, "08006", "connection_failure", "08"},
		{ConnectionException, "08000", "connection_exception", "08"},
		{AdminShutdown, "57P01", "admin_shutdown", "57"},
		{QueryCanceled, "57014", "query_canceled", "57"},
		{FeatureNotSupported, "0A000", "feature_not_supported", "0A"},
		{TransactionResolutionUnknown, "08007", "transaction_resolution_unknown", "08"},
		{SuccessfulCompletion, "00000", "successful_completion", "00"},
		{InternalError, "XX000", "internal_error", "XX"},
		{SQLStatementNotYetComplete, "03000", "sql_statement_not_yet_complete", "03"},
		{SREModifyingSQLDataNotPermitted, "2F002", "modifying_sql_data_not_permitted", "2F"},
		// Aliases share a code; Name gives the condition name of the code.
		{UndefinedDatabase, "3D000", "invalid_catalog_name", "3D"},
		{InvalidCatalogName, "3D000", "invalid_catalog_name", "3D"},
		{ArrayElementError, "2202E", "array_subscript_error", "22"},
		{UndefinedPstatement, "26000", "invalid_sql_statement_name", "26"},
	} {
		if string(tc.code) != tc.want || tc.code.String() != tc.want {
			t.Errorf("code %q, want %q", tc.code, tc.want)
		}
		if got := tc.code.Name(); got != tc.name {
			t.Errorf("%s.Name() = %q, want %q", tc.want, got, tc.name)
		}
		if got := tc.code.Class(); got != tc.class {
			t.Errorf("%s.Class() = %q, want %q", tc.want, got, tc.class)
		}
	}
	if n := Code("ZZZZZ").Name(); n != "" {
		t.Errorf("unknown code has name %q", n)
	}
	if c := Code("08").Class(); c != "" {
		t.Errorf("short code has class %q", c)
	}
}

// TestGeneratedUpToDate regenerates codes.go into a temporary file and
// compares it with the committed one.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go tool")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out := filepath.Join(t.TempDir(), "codes.go")
	cmd := exec.Command(goTool, "run", "gen.go", "-in", "errcodes.txt", "-out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go run gen.go: %v\n%s", err, b)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("codes.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("codes.go is stale: run go generate ./codec/sqlstate")
	}
}
