package e2e

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/sensorcast/sensorcast/tests/internal/harness"
)

// slowQueue is the send queue of the edge this scenario starts: small, so
// that a client that stops reading overflows it soon.
const slowQueue = 32

func testSlowConsumer(t *testing.T, e *env) {
	edge := e.startEdge(t, "edge-slow", harness.Settings{
		"SEND_QUEUE": strconv.Itoa(slowQueue),
		// The blocked write to the slow client must wait for it to start
		// reading again, so that it can see its close frame.
		"WRITE_TIMEOUT": "30s",
	})
	pad := strings.Repeat("p", 4000) // ~4 KB per message
	obs := newObserver(t, e, edge, pad)
	// A tiny receive buffer fills after a message or so; from then on the
	// edge's writes to this client block.
	slow := harness.Dial(t, "sloth@edge-slow", edge.WSURL, token(t, "sloth", "device:*"),
		harness.DialOptions{ReceiveBuffer: 4096, Paused: true})
	slow.MustSubscribe(t, "device:"+obs.device)

	// Until its queue overflows, the edge can park the slow client's messages
	// in the kernel: its socket's send buffer (at most tcp_wmem's maximum) and
	// the client's receive buffer. Publish well past that, in batches the
	// observer must each receive in full before the next one, so the
	// observer's own queue (also 32) never holds more than a batch.
	budget := maxSendBuffer() + 1<<20
	const batch = slowQueue / 2
	for sent := 0; sent < budget; sent += batch * len(pad) {
		obs.keepsReceiving(t, batch)
	}

	start := time.Now()
	ce, _ := slow.AwaitClose(t, 10*time.Second)
	if ce.Code != websocket.CloseTryAgainLater || ce.Text != "slow consumer" {
		t.Errorf("slow client closed with %d %q; want 1013 \"slow consumer\"", ce.Code, ce.Text)
	}
	got := len(slow.TakeAll())
	t.Logf("published %d messages of ~4 KB; the slow client read %d of them and its close in %s",
		obs.seq, got, time.Since(start).Round(time.Millisecond))
	if got >= obs.seq {
		t.Errorf("the slow client received all %d messages; it never fell behind", got)
	}

	obs.keepsReceiving(t, batch)
	fresh := dial(t, edge, "newcomer")
	fresh.MustSubscribe(t, "device:"+obs.device)
	obs.keepsReceiving(t, 1)
	fresh.ExpectRoomMessages(t, 1)
}

// maxSendBuffer is the largest send buffer Linux grows a TCP socket to.
func maxSendBuffer() int {
	const fallback = 4 << 20
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) != 3 {
		return fallback
	}
	n, err := strconv.Atoi(f[2])
	if err != nil || n <= 0 {
		return fallback
	}
	return n
}
