//go:build unix

package harness

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestMQTTPublisherDeliversEveryMessageInOrder(t *testing.T) {
	CheckGoroutines(t)
	broker := StartMosquitto(t)
	host, port, _ := net.SplitHostPort(broker.Addr)
	const n = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub := exec.CommandContext(ctx, LookBinary(t, "mosquitto_sub"), "-h", host, "-p", port, "-q", "1",
		"-t", "devices/+/telemetry", "-v")
	out, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = sub.Process.Kill()
		_ = sub.Wait()
	}()
	lines := make(chan string, 2*n)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	// mosquitto_sub prints nothing once subscribed: publish probes until
	// one arrives.
	pub := DialMQTT(t, broker.Addr, "harness-test")
	Eventually(t, 10*time.Second, func() error {
		if err := pub.Publish(ctx, "devices/probe/telemetry", []byte("probe")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-lines:
			return nil
		case <-time.After(200 * time.Millisecond):
			return fmt.Errorf("mosquitto_sub not subscribed yet")
		}
	})
	for i := range n {
		if err := pub.Publish(ctx, fmt.Sprintf("devices/d%d/telemetry", i%3), fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Publish(ctx, "devices/end/telemetry", []byte("end")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for line := range lines {
		topic, payload, _ := strings.Cut(line, " ")
		if topic == "devices/end/telemetry" {
			break
		}
		got[topic] = append(got[topic], payload)
	}
	for k := range 3 {
		topic := fmt.Sprintf("devices/d%d/telemetry", k)
		var want []string
		for i := k; i < n; i += 3 {
			want = append(want, fmt.Sprint(i))
		}
		if strings.Join(got[topic], ",") != strings.Join(want, ",") {
			t.Errorf("%s received %d messages, not exactly %d in order", topic, len(got[topic]), len(want))
		}
	}
}
