// Package pgtest runs a real, throwaway PostgreSQL server for tests: initdb
// into a temporary directory, postgres on a free loopback port with
// durability switched off (fsync, synchronous_commit and full_page_writes),
// and a fresh database for each caller.
//
// Starting a cluster costs a second or two, so a package whose tests all need
// PostgreSQL shares one server and gives every test its own database:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.Shared(t).URL() // an empty database of this test's own
//		...
//	}
//
// Start runs a server owned by a single test instead. A new database is a
// copy of template0 and costs 0.1–0.5 s itself, so a suite of many small
// subtests may rather empty one database between them.
//
// PostgreSQL refuses to run as root. When the tests run as root (as they do
// in CI), initdb and postgres are started directly with the uid and gid of the
// `postgres` system user (os/exec with SysProcAttr.Credential; Debian's
// postgresql package creates that user), in a directory owned by it; no
// runuser, su or sudo is involved. The server is never the system cluster
// that Debian's package may have started.
//
// When PostgreSQL is not installed the tests fail, telling to run `make deps`;
// they never skip.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sensorcast/sensorcast/services/internal/freeport"
)

const (
	// superuser is the role initdb creates and every URL connects as.
	superuser = "postgres"
	// readyTimeout bounds how long a fresh server may take to accept
	// connections; it takes well under a second on an idle machine, but
	// CI shares its cores with other tests.
	readyTimeout = 30 * time.Second
	// stopTimeout bounds the wait for an immediate shutdown before the
	// postmaster is killed.
	stopTimeout = 10 * time.Second
)

// Server is one database on a running PostgreSQL server.
type Server struct {
	c  *cluster
	db string
}

// URL is a postgres:// URL of the server's database, connecting as the
// superuser over TCP without a password.
func (s *Server) URL() string { return s.c.url(s.db) }

// NewDatabase creates another empty database on the same server, dropped when
// t ends, and returns its URL.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	return s.c.url(s.c.newDatabase(t))
}

// Start runs a PostgreSQL server of t's own, with an empty database, and stops
// it and removes its files when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	c, err := startCluster()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.stop(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return &Server{c: c, db: c.newDatabase(t)}
}

// shared is the server of the package's tests that call Shared, started by
// the first of them and stopped by Main.
var shared struct {
	mu     sync.Mutex
	inMain bool
	c      *cluster
	err    error // why the shared server could not start; later callers fail the same way
}

// Main runs the package's tests and then stops the server Shared started, if
// any. Call it from TestMain.
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c != nil {
		if err := shared.c.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	if code != 0 {
		os.Exit(code)
	}
}

// Shared returns a fresh, empty database, dropped when t ends, on the server
// shared by the package's tests; the first call starts it. The package's
// TestMain must call Main, which stops the server after the last test.
func Shared(t testing.TB) *Server {
	t.Helper()
	shared.mu.Lock()
	if !shared.inMain {
		shared.mu.Unlock()
		t.Fatal("pgtest: Shared needs the package to declare func TestMain(m *testing.M) { pgtest.Main(m) }, which stops the server")
	}
	if shared.c == nil && shared.err == nil {
		shared.c, shared.err = startCluster()
	}
	c, err := shared.c, shared.err
	shared.mu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return &Server{c: c, db: c.newDatabase(t)}
}

// cluster is a running postmaster and its data directory.
type cluster struct {
	dir     string // holds data/, the Unix socket and postgres.log
	port    int
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the postmaster has exited
	waitErr error         // the postmaster's exit status, set before exited is closed

	mu    sync.Mutex // serializes admin, which is one connection
	admin *pgx.Conn  // to the "postgres" database, for CREATE and DROP DATABASE
	next  atomic.Int64
}

func startCluster() (*cluster, error) {
	bin, err := findBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := credential()
	if err != nil {
		return nil, err
	}
	// Not t.TempDir(): its parents are private to the user running the
	// tests, so the postgres user could not reach a directory inside, and
	// its long path would overflow the 107 bytes a Unix socket path may use.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, err
	}
	c := &cluster{dir: dir, exited: make(chan struct{})}
	if err := c.start(bin, cred); err != nil {
		_ = c.stop() // err already carries the server's log
		return nil, err
	}
	return c, nil
}

func (c *cluster) start(bin string, cred *syscall.Credential) error {
	if cred != nil {
		if err := os.Chown(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	data := filepath.Join(c.dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"),
		"--pgdata", data,
		"--username", superuser,
		"--auth", "trust",
		"--encoding", "UTF8",
		"--locale", "C", // byte order for text, as in Go; and no locale to set up
		"--no-sync",
		"--no-instructions",
	)
	initdb.Dir = c.dir
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %v\n%s", initdb, err, out)
	}

	port, err := freeport.Port()
	if err != nil {
		return err
	}
	c.port = port
	logFile, err := os.Create(filepath.Join(c.dir, "postgres.log"))
	if err != nil {
		return err
	}
	defer logFile.Close() // the postmaster has its own copy of the descriptor
	c.cmd = exec.Command(filepath.Join(bin, "postgres"),
		"-D", data,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+c.dir,
		// A test's database is thrown away, so nothing needs to survive a
		// crash: skip the disk flushes that make up most of a write's cost.
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=200", // parallel tests each hold a small pool
	)
	c.cmd.Dir = c.dir
	c.cmd.Stdout = logFile
	c.cmd.Stderr = logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: cred,
		// Should the test binary die without stopping the server, the
		// kernel kills the postmaster, and its backends follow.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	return c.waitReady()
}

// waitReady polls until the server accepts a connection, and keeps that
// connection as c.admin.
func (c *cluster) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var lastErr error
	for {
		conn, err := pgx.Connect(ctx, c.url("postgres"))
		if err == nil {
			c.admin = conn
			return nil
		}
		lastErr = err
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited (%v) before accepting connections:\n%s", c.waitErr, c.log())
		case <-ctx.Done():
			return fmt.Errorf("postgres on port %d did not accept connections within %v: %v\n%s", c.port, readyTimeout, lastErr, c.log())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// newDatabase creates an empty database, dropped when t ends, and returns its name.
func (c *cluster) newDatabase(t testing.TB) string {
	t.Helper()
	name := "test_" + strconv.FormatInt(c.next.Add(1), 10)
	if err := c.exec("CREATE DATABASE " + name + " TEMPLATE template0"); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		// FORCE ends the connections a test may have left open.
		if err := c.exec("DROP DATABASE " + name + " WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database: %v", err)
		}
	})
	return name
}

func (c *cluster) exec(sql string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := c.admin.Exec(ctx, sql)
	return err
}

func (c *cluster) url(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// stop shuts the server down at once (its data is thrown away) and removes
// its directory.
func (c *cluster) stop() error {
	var errs []error
	if c.admin != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = c.admin.Close(ctx) // the server is going away; nothing to report
		cancel()
	}
	if c.cmd != nil && c.cmd.Process != nil {
		// SIGQUIT is PostgreSQL's "immediate shutdown": no checkpoint.
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-c.exited:
		case <-time.After(stopTimeout):
			_ = c.cmd.Process.Kill()
			<-c.exited
			errs = append(errs, fmt.Errorf("postgres did not stop within %v after SIGQUIT; killed it", stopTimeout))
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// log returns the end of the server's log, for error messages.
func (c *cluster) log() string {
	b, err := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	if err != nil {
		return err.Error()
	}
	const max = 4000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// findBinDir returns the directory holding initdb and postgres: the one on
// PATH, else the newest of Debian's /usr/lib/postgresql/<version>/bin.
func findBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	dirs = slices.DeleteFunc(dirs, func(dir string) bool {
		_, errInitdb := os.Stat(filepath.Join(dir, "initdb"))
		_, errPostgres := os.Stat(filepath.Join(dir, "postgres"))
		return errInitdb != nil || errPostgres != nil
	})
	if len(dirs) == 0 {
		return "", errors.New("PostgreSQL is not installed: no initdb and postgres on PATH or in /usr/lib/postgresql/*/bin (run `make deps`)")
	}
	slices.SortFunc(dirs, func(a, b string) int { return compareVersions(versionOf(a), versionOf(b)) })
	return dirs[len(dirs)-1], nil
}

// versionOf returns "15" for /usr/lib/postgresql/15/bin.
func versionOf(binDir string) string { return filepath.Base(filepath.Dir(binDir)) }

// compareVersions orders dotted versions numerically ("9.6" < "15" < "16.1").
func compareVersions(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errX := strconv.Atoi(as[i])
		y, errY := strconv.Atoi(bs[i])
		if errX != nil || errY != nil {
			if c := strings.Compare(as[i], bs[i]); c != 0 {
				return c
			}
			continue
		}
		if x != y {
			return x - y
		}
	}
	return len(as) - len(bs)
}

// credential returns nil when not root, and otherwise the postgres user's
// uid and gid, which initdb and postgres need because they refuse to run as
// root.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(superuser)
	if err != nil {
		return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root; it would run as the %q system user, but: %v (run `make deps`, whose postgresql package creates it)", superuser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %q: %w", superuser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %q: %w", superuser, err)
	}
	// Groups is empty, so the children drop root's supplementary groups.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
