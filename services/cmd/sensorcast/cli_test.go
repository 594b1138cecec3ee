package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/edge"
	"github.com/sensorcast/sensorcast/services/internal/natstest"
	"github.com/sensorcast/sensorcast/services/internal/registryclient"
	"github.com/sensorcast/sensorcast/services/registry"
)

// cliSecret is the JWT secret of the test registries: the development
// secret, so the CLI's no-configuration fallback can be tested too.
const cliSecret = edge.DevSecret

// cliTest drives the operator CLI against a real, in-process registry.
type cliTest struct {
	t    *testing.T
	addr string
	env  map[string]string
}

// startCLITest runs a registry (embedded store, embedded NATS) on a
// loopback port until the test ends.
func startCLITest(t *testing.T) *cliTest {
	t.Helper()
	nc := natstest.Connect(t, natstest.Start(t))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := registry.New(ctx, registry.Config{
		GRPCAddr:     ln.Addr().String(),
		JWTSecret:    cliSecret,
		PollInterval: registry.DefaultPollInterval,
		StopTimeout:  registry.DefaultStopTimeout,
	}, registry.Deps{NATS: nc, Registry: prometheus.NewRegistry()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry: %v", err)
		}
		svc.Close()
	})
	return &cliTest{t: t, addr: ln.Addr().String(), env: map[string]string{
		"SENSORCAST_REGISTRY_URL": ln.Addr().String(),
		"SENSORCAST_JWT_SECRET":   cliSecret,
	}}
}

// run runs `sensorcast args...` and returns its stdout, stderr and error.
func (c *cliTest) run(args ...string) (string, string, error) {
	return c.runWithStdin("", args...)
}

// runWithStdin is run with stdin (which run itself takes from the process).
func (c *cliTest) runWithStdin(stdin string, args ...string) (string, string, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	getenv := func(k string) string { return c.env[k] }
	var err error
	if stdin == "" {
		err = run(ctx, args, getenv, &out, &errOut)
	} else {
		cio := cliIO{getenv: getenv, stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut}
		err = runDevices(ctx, args[1:], cio)
	}
	return out.String(), errOut.String(), err
}

// ok runs a command that must succeed and returns its stdout.
func (c *cliTest) ok(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("sensorcast %s: %v\nstderr: %s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// fails runs a command that must fail with exit status 1 and code, and
// returns its error message.
func (c *cliTest) fails(code codes.Code, args ...string) string {
	c.t.Helper()
	_, _, err := c.run(args...)
	if err == nil {
		c.t.Fatalf("sensorcast %s succeeded, want %s", strings.Join(args, " "), code)
	}
	if got := status.Code(err); got != code {
		c.t.Errorf("sensorcast %s: code %s, want %s: %v", strings.Join(args, " "), got, code, err)
	}
	if exitCode(err) != 1 {
		c.t.Errorf("sensorcast %s: exit status %d, want 1", strings.Join(args, " "), exitCode(err))
	}
	return err.Error()
}

func wantContains(t *testing.T, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("output does not contain %q:\n%s", w, got)
		}
	}
}

func TestDevicesCanBeCreatedReadListedUpdatedAndDeleted(t *testing.T) {
	c := startCLITest(t)
	c.ok("groups", "create", "boilers", "--name", "Boilers")
	out := c.ok("devices", "create", "d1", "--name", "Boiler 1", "--type", "thermostat", "--group", "boilers",
		"--label", "site=a", "--label", "tier=prod", "--attr", "fw=1.2")
	wantContains(t, out, "d1", "Boiler 1", "thermostat", "boilers", "site=a,tier=prod", "fw=1.2", "VERSION:")
	c.ok("devices", "create", "d2", "--label", "site=a", "--label", "tier=test")
	c.ok("devices", "create", "d3", "--label", "site=b", "--disabled")

	t.Run("get prints every field", func(t *testing.T) {
		wantContains(t, c.ok("devices", "get", "d1"), "ENABLED:", "true", "HAS SECRET:", "GROUPS:", "boilers")
	})
	t.Run("get --output json prints the device as protojson", func(t *testing.T) {
		var d registryv1.Device
		if err := protojson.Unmarshal([]byte(c.ok("devices", "get", "d3", "--output", "json")), &d); err != nil {
			t.Fatal(err)
		}
		if d.GetId() != "d3" || d.GetEnabled() || d.GetLabels()["site"] != "b" || d.GetVersion() != 1 {
			t.Errorf("device = %v", &d)
		}
	})
	t.Run("list filters by selector, state, group and name", func(t *testing.T) {
		out := c.ok("devices", "list", "--selector", "site=a,tier!=test")
		wantContains(t, out, "ID", "NAME", "ENABLED", "GROUPS", "LABELS", "d1", "1 of 1 devices")
		wantContains(t, c.ok("devices", "list", "--disabled"), "d3", "1 of 1 devices")
		wantContains(t, c.ok("devices", "list", "--enabled"), "2 of 2 devices")
		wantContains(t, c.ok("devices", "list", "--group", "boilers"), "d1", "1 of 1 devices")
		wantContains(t, c.ok("devices", "list", "--name-prefix", "Boiler"), "d1", "1 of 1 devices")
	})
	t.Run("list stops at --limit and reports the total", func(t *testing.T) {
		out := c.ok("devices", "list", "--limit", "2")
		wantContains(t, out, "d1", "d2", "2 of 3 devices")
		if strings.Contains(out, "d3") {
			t.Errorf("a third device past --limit 2:\n%s", out)
		}
	})
	t.Run("list --output json prints a devices object", func(t *testing.T) {
		var resp registryv1.ListDevicesResponse
		if err := protojson.Unmarshal([]byte(c.ok("devices", "list", "--output", "json")), &resp); err != nil {
			t.Fatal(err)
		}
		if len(resp.GetDevices()) != 3 || resp.GetTotalSize() != 3 {
			t.Errorf("list = %v", &resp)
		}
	})
	t.Run("update changes only the fields given", func(t *testing.T) {
		out := c.ok("devices", "update", "d1", "--disable", "--label", "site=b")
		wantContains(t, out, "Boiler 1", "boilers", "site=b", "fw=1.2")
		if strings.Contains(out, "tier=prod") {
			t.Errorf("labels were not replaced:\n%s", out)
		}
		wantContains(t, c.ok("devices", "list", "--disabled"), "d1", "d3", "2 of 2 devices")
		c.ok("devices", "update", "d1", "--enable", "--group", "")
		wantContains(t, c.ok("devices", "list", "--group", "boilers"), "0 of 0 devices")
	})
	t.Run("a stale --if-version is refused", func(t *testing.T) {
		wantContains(t, c.fails(codes.Aborted, "devices", "update", "d2", "--name", "x", "--if-version", "7"), "aborted")
	})
	t.Run("delete removes the device", func(t *testing.T) {
		wantContains(t, c.ok("devices", "delete", "d2"), "deleted device d2")
		wantContains(t, c.fails(codes.NotFound, "devices", "get", "d2"), "devices get: not found")
	})
}

func TestASecretIsReadFromStdinOrGenerated(t *testing.T) {
	c := startCLITest(t)
	c.ok("devices", "create", "d1")

	out, errOut, err := c.runWithStdin("a-secret-of-enough-length\n", "devices", "set-secret", "d1")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	wantContains(t, out, "device d1 has a new secret")
	if !verifySecret(t, c.addr, "d1", "a-secret-of-enough-length") {
		t.Error("the secret read from stdin does not verify")
	}

	out = c.ok("devices", "set-secret", "d1", "--generate")
	generated := strings.TrimSpace(out)
	if len(generated) != 43 || !verifySecret(t, c.addr, "d1", generated) {
		t.Errorf("generated secret %q does not verify", generated)
	}
	wantContains(t, c.ok("devices", "get", "d1"), "HAS SECRET:", "true")

	if _, _, err := c.runWithStdin("\n", "devices", "set-secret", "d1"); exitCode(err) != 2 {
		t.Errorf("an empty secret: err = %v, want a usage error", err)
	}
}

func verifySecret(t *testing.T, addr, id, secret string) bool {
	t.Helper()
	token, err := registry.MintToken(cliSecret, "test", registry.AdminRole, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	conn, client, err := registryclient.Dial(registryclient.Config{URL: addr, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := client.VerifyDeviceSecret(context.Background(), &registryv1.VerifyDeviceSecretRequest{DeviceId: id, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetValid()
}

// writeFleetCSV writes a CSV of n devices fleet-00000, fleet-00001, ... in
// group fleet; bad (if set) replaces the row of device number badAt.
func writeFleetCSV(t *testing.T, n, badAt int, bad string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("id,name,type,groups,labels,enabled\n")
	for i := range n {
		if bad != "" && i == badAt {
			b.WriteString(bad + "\n")
			continue
		}
		fmt.Fprintf(&b, "fleet-%05d,Sensor %d,esp32,fleet,site=s%d;tier=prod,%t\n", i, i, i%3, i%10 != 0)
	}
	path := filepath.Join(t.TempDir(), "fleet.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImportSendsTheFileInBatchesOfTenThousand(t *testing.T) {
	c := startCLITest(t)
	c.ok("groups", "create", "fleet")
	out := c.ok("devices", "import", "--csv", writeFleetCSV(t, 25_000, 0, ""))
	wantContains(t, out,
		"batch 1 of 3 (lines 2-10001): 10000 created, 0 updated",
		"batch 2 of 3 (lines 10002-20001): 10000 created, 0 updated",
		"batch 3 of 3 (lines 20002-25001): 5000 created, 0 updated",
		"imported 25000 devices: 25000 created, 0 updated")
	wantContains(t, c.ok("devices", "list", "--group", "fleet", "--limit", "1"), "fleet-00000", "1 of 25000 devices")
	wantContains(t, c.ok("devices", "list", "--disabled", "--selector", "site=s0", "--limit", "0"), "834 of 834 devices")

	// Devices that exist are replaced, and read from stdin.
	stdin := "ID,Enabled,Labels\nfleet-00001,false,\nnew-1,,site=x\n"
	out, errOut, err := c.runWithStdin(stdin, "devices", "import", "--csv", "-")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	wantContains(t, out, "imported 2 devices: 1 created, 1 updated")
	wantContains(t, c.ok("devices", "get", "fleet-00001"), "ENABLED:", "false", "GROUPS:", "-")
}

func TestImportStopsAtTheFirstRefusedBatch(t *testing.T) {
	c := startCLITest(t)
	c.ok("groups", "create", "fleet")
	// Line 15003 (device 15001, in the second batch) names a group that
	// does not exist: only the registry can tell.
	_, _, err := c.run("devices", "import", "--csv", writeFleetCSV(t, 21_000, 15_001, "fleet-15001,,,fleet;nosuchgroup,,"))
	if err == nil {
		t.Fatal("import succeeded")
	}
	if exitCode(err) != 1 {
		t.Errorf("exit status %d, want 1", exitCode(err))
	}
	wantContains(t, err.Error(),
		"batch 2 of 3 (lines 10002-20001) was refused",
		`line 15003: groups: group "nosuchgroup" does not exist`,
		"lines 10002-21001 (11000 devices) were not imported; 10000 devices from earlier batches were (10000 created, 0 updated)")
	wantContains(t, c.ok("devices", "list", "--limit", "1"), "1 of 10000 devices")
	c.fails(codes.NotFound, "devices", "get", "fleet-20500")
}

func TestImportRefusesAFileWithBadRowsNamingTheirLines(t *testing.T) {
	c := startCLITest(t)
	path := filepath.Join(t.TempDir(), "bad.csv")
	csv := "id,labels,enabled\nok-1,,\n,,\nok-2,site,\nok-3,,maybe\nok-1,,\n"
	if err := os.WriteFile(path, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.run("devices", "import", "--csv", path)
	if err == nil {
		t.Fatal("import succeeded")
	}
	wantContains(t, err.Error(), "4 invalid rows, nothing imported",
		"line 3: id is empty", `line 4: labels: "site": want key=value`, `line 5: enabled "maybe"`, `line 6: id "ok-1" is also on line 2`)
	wantContains(t, c.ok("devices", "list"), "0 of 0 devices")
}

func TestParseDeviceCSV(t *testing.T) {
	for name, tc := range map[string]struct {
		csv     string
		wantErr string
		want    int
	}{
		"columns in any order, with a BOM and any case": {csv: "\ufeffName,ID\nBoiler,b1\n", want: 1},
		"only an id column":                             {csv: "id\na\nb\n", want: 2},
		"an empty file":                                 {csv: "", wantErr: "empty file"},
		"a header only":                                 {csv: "id,name\n", wantErr: "no devices"},
		"no id column":                                  {csv: "name\nx\n", wantErr: "no id column"},
		"an unknown column":                             {csv: "id,colour\na,red\n", wantErr: `unknown column "colour"`},
		"a column twice":                                {csv: "id,name,name\na,b,c\n", wantErr: `column "name" appears twice`},
		"a row with too many cells":                     {csv: "id\na,b\n", wantErr: "line 2"},
		"an id outside the charset":                     {csv: "id\nbad id\n", wantErr: `line 2: id "bad id"`},
		"a label twice":                                 {csv: "id,labels\na,k=1;k=2\n", wantErr: `key "k" given twice`},
	} {
		t.Run(name, func(t *testing.T) {
			rows, err := parseDeviceCSV(strings.NewReader(tc.csv))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(rows) != tc.want {
				t.Fatalf("rows = %d, err = %v; want %d rows", len(rows), err, tc.want)
			}
		})
	}
}

func FuzzParseDeviceCSV(f *testing.F) {
	f.Add("id,name,type,groups,labels,attributes,enabled\nd1,Boiler,esp32,a;b,site=a;tier=prod,fw=1,true\n")
	f.Add("id\n\"multi\nline\"\n")
	f.Add("id,labels\na,=\n")
	f.Fuzz(func(t *testing.T, csv string) {
		rows, err := parseDeviceCSV(strings.NewReader(csv))
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.device.GetId() == "" || r.line < 2 {
				t.Fatalf("row %+v accepted", r)
			}
		}
	})
}

func TestGroupsListTheirMembersAndForceDeletes(t *testing.T) {
	c := startCLITest(t)
	out := c.ok("groups", "create", "floor-1", "--name", "First floor", "--description", "Everything\non floor 1")
	wantContains(t, out, "floor-1", "First floor", "MEMBERS:")
	c.ok("groups", "create", "floor-2")
	c.ok("devices", "create", "a", "--group", "floor-1")
	c.ok("devices", "create", "b", "--group", "floor-1", "--group", "floor-2")

	wantContains(t, c.ok("groups", "list"), "floor-1", "First floor", "2 of 2 groups")
	wantContains(t, c.ok("groups", "get", "floor-1"), "MEMBERS:", "2")
	wantContains(t, c.ok("groups", "members", "floor-1"), "a", "b", "2 of 2 members of floor-1")
	wantContains(t, c.ok("groups", "members", "floor-1", "--limit", "1"), "1 of 2 members of floor-1")
	c.fails(codes.NotFound, "groups", "members", "nosuchgroup")

	msg := c.fails(codes.FailedPrecondition, "groups", "delete", "floor-1")
	wantContains(t, msg, "has 2 members", "--force")
	wantContains(t, c.ok("groups", "delete", "floor-1", "--force"), "deleted group floor-1")
	c.fails(codes.NotFound, "groups", "get", "floor-1")
	wantContains(t, c.ok("devices", "get", "b"), "floor-2")
	if out := c.ok("devices", "get", "b"); strings.Contains(out, "floor-1") {
		t.Errorf("device b is still in the deleted group:\n%s", out)
	}
}

func TestRegistryErrorsAreShownWithCodeAndField(t *testing.T) {
	c := startCLITest(t)
	t.Run("a bad token is unauthenticated, with a hint", func(t *testing.T) {
		msg := c.fails(codes.Unauthenticated, "devices", "list", "--registry-token", "not-a-jwt")
		wantContains(t, msg, "devices list: unauthenticated: invalid token", "--registry-token")
	})
	t.Run("a token signed with another secret is unauthenticated", func(t *testing.T) {
		c.fails(codes.Unauthenticated, "devices", "list", "--jwt-secret", "another-secret-of-enough-length")
	})
	t.Run("an invalid field is named", func(t *testing.T) {
		msg := c.fails(codes.InvalidArgument, "devices", "create", "bad id!")
		wantContains(t, msg, "devices create: invalid argument: device.id: ")
	})
	t.Run("several invalid fields are listed a line each", func(t *testing.T) {
		msg := c.fails(codes.InvalidArgument, "devices", "create", "bad id!", "--label", "bad key=x")
		wantContains(t, msg, "devices create: invalid argument\n  device.id: ", "\n  device.labels")
	})
	t.Run("an existing id already exists", func(t *testing.T) {
		c.ok("devices", "create", "twice")
		wantContains(t, c.fails(codes.AlreadyExists, "devices", "create", "twice"), "already exists")
	})
	t.Run("an unreachable registry is unavailable, with a hint", func(t *testing.T) {
		msg := c.fails(codes.Unavailable, "devices", "get", "x", "--registry-url", "127.0.0.1:1", "--timeout", "5s")
		wantContains(t, msg, "unavailable", "--registry-url")
	})
}

func TestWithoutATokenOrSecretTheDevelopmentSecretIsUsedWithANote(t *testing.T) {
	c := startCLITest(t)
	delete(c.env, "SENSORCAST_JWT_SECRET")
	out, errOut, err := c.run("devices", "list")
	if err != nil {
		t.Fatal(err)
	}
	wantContains(t, out, "0 of 0 devices")
	wantContains(t, errOut, "public development secret")
}

func TestCommandsCalledWrongAreUsageErrors(t *testing.T) {
	for name, args := range map[string][]string{
		"devices without a command":         {"devices"},
		"an unknown devices command":        {"devices", "frobnicate"},
		"get without an id":                 {"devices", "get"},
		"get with two ids":                  {"devices", "get", "a", "b"},
		"an unknown flag":                   {"devices", "list", "--colour"},
		"--enabled with --disabled":         {"devices", "list", "--enabled", "--disabled"},
		"a negative limit":                  {"groups", "list", "--limit", "-1"},
		"an update that changes nothing":    {"devices", "update", "d1"},
		"a label without a value":           {"devices", "create", "d1", "--label", "site"},
		"an unknown output format":          {"groups", "get", "g", "--output", "yaml"},
		"an import without a file":          {"devices", "import"},
		"an unknown top-level command":      {"frobnicate"},
		"--generate together with --remove": {"devices", "set-secret", "d1", "--generate", "--remove"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut)
			if exitCode(err) != 2 {
				t.Errorf("err = %v: exit status %d, want 2", err, exitCode(err))
			}
			wantContains(t, errOut.String(), "Usage")
		})
	}
}

func TestHelpListsTheConnectionFlagsWithTheirVariables(t *testing.T) {
	var out, errOut bytes.Buffer
	_ = run(context.Background(), []string{"devices", "list", "-h"}, func(string) string { return "" }, &out, &errOut)
	wantContains(t, errOut.String(), "Usage: sensorcast devices list", "--selector", "--registry-url string (SENSORCAST_REGISTRY_URL)", "--output string (SENSORCAST_OUTPUT)")
	if strings.Contains(errOut.String(), "SENSORCAST_SELECTOR") {
		t.Errorf("a command flag is said to have an environment variable:\n%s", errOut.String())
	}
}
