package main

// What the operator commands (sensorcast devices, sensorcast groups) share:
// how they parse their arguments, reach the registry, print results and
// word the registry's errors.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/edge"
	"github.com/sensorcast/sensorcast/services/internal/envflag"
	"github.com/sensorcast/sensorcast/services/internal/registryclient"
	"github.com/sensorcast/sensorcast/services/registry"
)

// cliTokenTTL is how long a token minted from a JWT secret is valid: long
// enough for a large import, short enough not to be worth stealing.
const cliTokenTTL = time.Hour

// cliIO is what an operator command reads from and writes to.
type cliIO struct {
	getenv func(string) string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// cliSubcommand is one verb of an operator command ("devices create").
type cliSubcommand struct {
	name    string
	args    string // the positional arguments, for the usage text ("ID")
	summary string
	run     func(ctx context.Context, cmd *cliCommand, args []string) error
}

// usageError is a command called the wrong way. main exits 2 for it; the
// usage text has already been printed.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// dispatchCLI runs the subcommand args[0] of the operator command name.
func dispatchCLI(ctx context.Context, name string, subs []cliSubcommand, args []string, cio cliIO) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: sensorcast %s <command> [flags]\n\nCommands:\n", name)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, s := range subs {
			fmt.Fprintf(tw, "  %s %s\t%s\n", s.name, s.args, s.summary)
		}
		_ = tw.Flush()
		fmt.Fprintf(w, "\nRun 'sensorcast %s <command> -h' for a command's flags.\n", name)
	}
	if len(args) == 0 {
		usage(cio.stderr)
		return &usageError{fmt.Errorf("%s: no command given", name)}
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(cio.stdout)
		return nil
	}
	for _, s := range subs {
		if s.name == args[0] {
			cmd := newCLICommand(name+" "+s.name, s.args, s.summary, cio)
			return s.run(ctx, cmd, args[1:])
		}
	}
	usage(cio.stderr)
	return &usageError{fmt.Errorf("%s: unknown command %q", name, args[0])}
}

// cliCommand is one invocation of an operator subcommand: its flags (the
// registry connection flags plus its own) and where it writes.
type cliCommand struct {
	cliIO
	name string // "devices create"
	args string // its positional arguments, for messages ("ID")
	fs   *flag.FlagSet

	registryURL   string
	registryToken string
	jwtSecret     string
	output        string
	timeout       time.Duration
}

// cliConnectionFlags are the flags of every operator command; only these
// are also read from the environment (SENSORCAST_REGISTRY_URL, ...).
var cliConnectionFlags = []string{"registry-url", "registry-token", "jwt-secret", "output", "timeout"}

func newCLICommand(name, args, summary string, cio cliIO) *cliCommand {
	c := &cliCommand{cliIO: cio, name: name, args: args}
	c.fs = flag.NewFlagSet("sensorcast "+name, flag.ContinueOnError)
	c.fs.SetOutput(cio.stderr)
	c.fs.StringVar(&c.registryURL, "registry-url", "127.0.0.1:9090", "gRPC address of the device registry (the default is where sensorcast run serves it)")
	c.fs.StringVar(&c.registryToken, "registry-token", "", "bearer token with role admin (default: minted from --jwt-secret)")
	c.fs.StringVar(&c.jwtSecret, "jwt-secret", "", "the registry's HS256 secret, to mint a short-lived admin token when --registry-token is empty (empty too: the public development secret that sensorcast run uses by default)")
	c.fs.StringVar(&c.output, "output", "table", "output format: table or json")
	c.fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long each call to the registry may take")
	c.fs.Usage = func() {
		out := c.fs.Output()
		fmt.Fprintf(out, "Usage: sensorcast %s [flags]\n\n%s.\n", strings.TrimSpace(name+" "+args), summary)
		heading := "\nFlags:"
		c.fs.VisitAll(func(f *flag.Flag) {
			if slices.Contains(cliConnectionFlags, f.Name) {
				return
			}
			if heading != "" {
				fmt.Fprintln(out, heading)
				heading = ""
			}
			printFlag(out, f, "")
		})
		fmt.Fprintln(out, "\nRegistry connection flags (each may also be set by its environment variable):")
		c.fs.VisitAll(func(f *flag.Flag) {
			if slices.Contains(cliConnectionFlags, f.Name) {
				printFlag(out, f, " ("+envflag.EnvName(f.Name)+")")
			}
		})
	}
	return c
}

func printFlag(w io.Writer, f *flag.Flag, env string) {
	value, usage := flag.UnquoteUsage(f)
	if value != "" {
		value = " " + value
	}
	fmt.Fprintf(w, "  --%s%s%s\n    \t%s", f.Name, value, env, usage)
	if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
		fmt.Fprintf(w, " (default %q)", f.DefValue)
	}
	fmt.Fprintln(w)
}

// parse parses args, in which flags and positional arguments may be mixed
// ("devices create d1 --name x"), and returns exactly want positional
// arguments. The connection flags not given fall back to the environment.
func (c *cliCommand) parse(args []string, want int) ([]string, error) {
	var positional []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{fmt.Errorf("%s: %w", c.name, err)}
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional, args = append(positional, rest[0]), rest[1:]
	}
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range cliConnectionFlags {
		if v := c.getenv(envflag.EnvName(name)); v != "" && !set[name] {
			if err := c.fs.Set(name, v); err != nil {
				return nil, fmt.Errorf("invalid %s=%q: %w", envflag.EnvName(name), v, err)
			}
		}
	}
	switch {
	case c.output != "table" && c.output != "json":
		return nil, c.usageErrorf("output (SENSORCAST_OUTPUT) %q: want table or json", c.output)
	case c.timeout <= 0:
		return nil, c.usageErrorf("timeout (SENSORCAST_TIMEOUT) must be positive, got %s", c.timeout)
	case len(positional) < want:
		return nil, c.usageErrorf("missing %s", c.args)
	case len(positional) > want:
		return nil, c.usageErrorf("unexpected argument(s) %q", positional[want:])
	}
	return positional, nil
}

// usageErrorf prints the command's usage and returns a usageError (which
// main prints after it).
func (c *cliCommand) usageErrorf(format string, args ...any) error {
	c.fs.Usage()
	return &usageError{fmt.Errorf(c.name+": "+format, args...)}
}

// connect dials the registry with the bearer token; the caller calls close.
func (c *cliCommand) connect() (client registryv1.DeviceRegistryClient, close func(), err error) {
	token := c.registryToken
	if token == "" {
		secret := c.jwtSecret
		if secret == "" {
			secret = edge.DevSecret
			fmt.Fprintln(c.stderr, "sensorcast: no --registry-token or --jwt-secret set: signing an admin token with the public development secret (what sensorcast run accepts by default)")
		}
		if token, err = registry.MintToken(secret, "sensorcast-cli", registry.AdminRole, cliTokenTTL); err != nil {
			return nil, nil, err
		}
	}
	conn, client, err := registryclient.Dial(registryclient.Config{URL: c.registryURL, Token: token})
	if err != nil {
		return nil, nil, err
	}
	return client, func() { _ = conn.Close() }, nil
}

// call bounds one registry call by --timeout.
// dial connects to the registry for a command that makes one call, and
// bounds that call by --timeout; done releases both.
func (c *cliCommand) dial(ctx context.Context) (client registryv1.DeviceRegistryClient, callCtx context.Context, done func(), err error) {
	client, closeConn, err := c.connect()
	if err != nil {
		return nil, nil, nil, err
	}
	callCtx, cancel := c.call(ctx)
	return client, callCtx, func() { cancel(); closeConn() }, nil
}

func (c *cliCommand) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// failed words a failed registry call for an operator (see rpcError).
func (c *cliCommand) failed(err error) error {
	return newRPCError(c.name, err, nil)
}

// rpcError is a failed registry call, worded for an operator: the code in
// words, then each field violation (on a line of its own when there are
// several) or else the message, and a hint for the codes that need one. It
// keeps the gRPC status (status.Code works on it).
type rpcError struct {
	op    string
	st    *status.Status
	lead  string   // the code in words and, without details, the message
	lines []string // one per field violation
	hint  string
}

// newRPCError returns err as an rpcError; field renames each violation's
// field before it is shown (nil: as is).
func newRPCError(op string, err error, field func(string) string) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%s: %w", op, err)
	}
	if field == nil {
		field = func(f string) string { return f }
	}
	words := codeWords(st.Code())
	e := &rpcError{op: op, st: st}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				e.lines = append(e.lines, field(v.GetField())+": "+v.GetDescription())
			}
		case *errdetails.PreconditionFailure:
			for _, v := range d.GetViolations() {
				if v.GetSubject() != "" {
					e.lines = append(e.lines, field(v.GetSubject())+": "+v.GetDescription())
				}
			}
		}
	}
	e.lead = words
	if len(e.lines) == 0 {
		e.lead += ": " + strings.TrimPrefix(st.Message(), words+": ")
	}
	switch st.Code() {
	case codes.Unauthenticated, codes.PermissionDenied:
		e.hint = "check --registry-token (SENSORCAST_REGISTRY_TOKEN), or --jwt-secret (SENSORCAST_JWT_SECRET) to mint one"
	case codes.Unavailable:
		e.hint = "is the registry running at --registry-url (SENSORCAST_REGISTRY_URL)?"
	}
	return e
}

func (e *rpcError) Error() string {
	var b strings.Builder
	b.WriteString(e.op + ": " + e.lead)
	if len(e.lines) == 1 {
		b.WriteString(": " + e.lines[0])
	} else {
		for _, l := range e.lines {
			b.WriteString("\n  " + l)
		}
	}
	if e.hint != "" {
		b.WriteString("\n  (" + e.hint + ")")
	}
	return b.String()
}

// GRPCStatus lets status.FromError and status.Code see the status.
func (e *rpcError) GRPCStatus() *status.Status { return e.st }

// codeWords spells a code in lower-case words: InvalidArgument is
// "invalid argument".
func codeWords(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte(' ')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// print writes m as JSON (--output json) or with table (--output table).
func (c *cliCommand) print(m proto.Message, table func(w io.Writer)) error {
	if c.output == "json" {
		return printJSON(c.stdout, m)
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// printJSON writes m as indented protojson with the proto field names (the
// names error messages use), including false and empty fields.
func printJSON(w io.Writer, m proto.Message) error {
	raw, err := protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = w.Write(out.Bytes())
	return err
}

// pageSize is the page to ask for when limit more items are wanted
// (0: all): the API's largest page, or fewer.
func pageSize(limit, have int) int32 {
	const maxPage = 1000
	if limit == 0 || limit-have > maxPage {
		return maxPage
	}
	return int32(limit - have)
}

// stringsFlag is a flag that may be repeated (--group a --group b); an
// empty value adds nothing, so --group "" clears a list in an update.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error {
	if v != "" {
		*s = append(*s, v)
	}
	return nil
}

// mapFlag is a repeated key=value flag (--label site=a --label tier=prod);
// an empty value adds nothing, so --label "" clears a map in an update.
type mapFlag map[string]string

func (m mapFlag) String() string { return joinMap(m, ",") }
func (m mapFlag) Set(v string) error {
	if v == "" {
		return nil
	}
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value", v)
	}
	if _, dup := m[k]; dup {
		return fmt.Errorf("%q: key %q given twice", v, k)
	}
	m[k] = val
	return nil
}

// joinMap returns "k=v" pairs sorted by key, joined by sep.
func joinMap(m map[string]string, sep string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, sep)
}

// orDash keeps empty table cells visible.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().Local().Format(time.RFC3339)
}

// readLine reads one line (without its line ending) from r: a secret piped
// in or typed.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
