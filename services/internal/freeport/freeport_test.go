package freeport

import (
	"net"
	"testing"
)

func TestPortsAreFreeAndBelowTheEphemeralRange(t *testing.T) {
	if high == 0 {
		t.Skip("the ephemeral range leaves no room below it on this machine; Addr falls back to port 0")
	}
	seen := map[int]bool{}
	for range 50 {
		port, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if port < low || port >= high {
			t.Fatalf("port %d is outside [%d, %d)", port, low, high)
		}
		if seen[port] {
			t.Fatalf("port %d handed out twice", port)
		}
		seen[port] = true
	}
	// A port in use is skipped.
	addr, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the port Addr returned cannot be bound: %v", err)
	}
	defer ln.Close()
	next.Add(^uint32(0)) // the next call would try the same port again
	again, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	if again == addr {
		t.Errorf("Addr returned %s, which is in use", addr)
	}
}
