package redislimiter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/servicedesk-go/servicedesk"
)

// The tests run against a real redis-server, started on a free loopback
// port in a temporary directory, when one is on PATH; otherwise against
// miniredis, saying so. With REDISLIMITER_REQUIRE_REDIS=1 (CI sets it) a
// missing redis-server is a failure; REDISLIMITER_REDIS_SERVER names
// another binary, or "none" for miniredis whatever is installed.
const (
	requireRedisEnv = "REDISLIMITER_REQUIRE_REDIS"
	redisServerEnv  = "REDISLIMITER_REDIS_SERVER"
)

// shared is the server most tests use, each with its own key prefix.
var shared *testRedis

func TestMain(m *testing.M) {
	var err error
	shared, err = startRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redislimiter tests:", err)
		os.Exit(1)
	}
	os.Setenv("REDIS_ADDR", shared.addr) // for the examples
	if shared.mini != nil {
		fmt.Fprintln(os.Stderr, "note: redis-server is not on PATH: the redislimiter tests run against miniredis (install redis-server to test against the real one)")
	}
	code := m.Run()
	shared.stop()
	os.Exit(code)
}

// testRedis is a Redis server of the tests': a redis-server process, or
// miniredis.
type testRedis struct {
	addr   string
	dir    string
	path   string
	cmd    *exec.Cmd
	exited chan error
	mini   *miniredis.Miniredis
}

func startRedis() (*testRedis, error) {
	server := cmp.Or(os.Getenv(redisServerEnv), "redis-server")
	path, err := exec.LookPath(server)
	if server == "none" {
		err = errors.New(redisServerEnv + "=none")
	}
	if err != nil {
		if os.Getenv(requireRedisEnv) == "1" {
			return nil, fmt.Errorf("%s=1 and redis-server is not on PATH: %w", requireRedisEnv, err)
		}
		m := miniredis.NewMiniRedis()
		m.ClockTTL(true)
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, err
		}
		return &testRedis{addr: m.Addr(), mini: m}, nil
	}
	dir, err := os.MkdirTemp("", "redislimiter-test-")
	if err != nil {
		return nil, err
	}
	r := &testRedis{dir: dir, path: path}
	// A free port may be taken between looking and listening: try again.
	for range 5 {
		if r.addr, err = freePort(); err != nil {
			continue
		}
		if err = r.start(); err == nil {
			return r, nil
		}
	}
	os.RemoveAll(dir)
	return nil, err
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start runs redis-server on r.addr and waits until it answers.
func (r *testRedis) start() error {
	_, port, _ := net.SplitHostPort(r.addr)
	r.cmd = exec.Command(r.path, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log"))
	dieWithParent(r.cmd)
	if err := r.cmd.Start(); err != nil {
		return err
	}
	r.exited = make(chan error, 1)
	go func(cmd *exec.Cmd, exited chan<- error) { exited <- cmd.Wait() }(r.cmd, r.exited)
	rdb := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-r.exited:
			r.exited = nil
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			return fmt.Errorf("redis-server exited: %v\n%s", err, log)
		default:
		}
		if rdb.Ping(context.Background()).Err() == nil {
			return nil
		}
	}
	r.kill()
	return errors.New("redis-server did not answer within 10 s")
}

// kill stops the server at once, as a crash would; a stopped server is
// left as it is.
func (r *testRedis) kill() {
	if r.mini != nil {
		r.mini.Close()
		return
	}
	if r.exited == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.exited
	r.exited = nil
}

// restart starts the server again on the same address, empty.
func (r *testRedis) restart() error {
	if r.mini != nil {
		r.mini.FlushAll()
		return r.mini.Restart()
	}
	return r.start()
}

func (r *testRedis) stop() {
	r.kill()
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
}

// ownRedis is a server for one test, which may kill it.
func ownRedis(t *testing.T) *testRedis {
	t.Helper()
	r, err := startRedis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	return r
}

// client is a go-redis client of r, closed with the test, counting the
// commands it sends (a script is one, EVALSHA; one the server did not know
// yet is two, EVALSHA and EVAL), but for those that set up a connection.
func (r *testRedis) client(t testing.TB) (*redis.Client, *atomic.Int64) {
	rdb := redis.NewClient(&redis.Options{Addr: r.addr})
	t.Cleanup(func() { rdb.Close() })
	n := new(atomic.Int64)
	rdb.AddHook(countHook{n})
	return rdb, n
}

type countHook struct{ n *atomic.Int64 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "hello", "client", "auth", "select":
		default:
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// prefix is a key prefix of the test's own.
func prefix(t testing.TB) string {
	return "test:" + t.Name() + ":" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
}

// replyHook delays every script's reply (a Redis a WAN link away), or
// answers scripts itself (a reply the limiter must not trust past its own
// deadline), and counts the scripts run, and those that gave a turn back,
// once they have run.
type replyHook struct {
	delay  atomic.Int64 // ns added after the server answered
	forged atomic.Pointer[[]any]
	evals  atomic.Int64
	backs  atomic.Int64
}

func (h *replyHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *replyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *replyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "evalsha" && cmd.Name() != "eval" {
			return next(ctx, cmd)
		}
		defer h.evals.Add(1)
		if slices.Contains(cmd.Args(), any(string(opGiveBack))) {
			defer h.backs.Add(1)
		}
		if v := h.forged.Load(); v != nil {
			cmd.(*redis.Cmd).SetVal(*v)
			return nil
		}
		err := next(ctx, cmd)
		time.Sleep(time.Duration(h.delay.Load()))
		return err
	}
}

// hookedLimiter is a limiter on the shared server whose client goes
// through a replyHook; op is its operation timeout.
func hookedLimiter(t *testing.T, cfg servicedesk.RateLimiterConfig, op time.Duration) (*limiter, *replyHook) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: shared.addr})
	t.Cleanup(func() { rdb.Close() })
	h := &replyHook{}
	rdb.AddHook(h)
	l := New(rdb, cfg, WithKeyPrefix(prefix(t))).(*limiter)
	l.timing.op = op
	return l, h
}

// forgedReply is a script's reply of code, saying wait.
func forgedReply(code int, wait time.Duration) []any {
	return []any{int64(code), wait.Microseconds(), "", "", "e", "0:0", "0", "0", int64(1), int64(0), int64(0),
		int64(0), "0", int64(1), int64(0), int64(-1), "", int64(0), "", "0"}
}
