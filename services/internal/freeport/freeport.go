// Package freeport picks loopback ports for servers that tests start as
// separate processes, which need a port number before they bind it.
//
// The usual trick, listening on port 0 and closing the listener, takes a
// port from the kernel's ephemeral range, the range that every outgoing
// connection also takes its source port from. Between the close and the
// server's bind, any connection of any test may take that port, and the
// server then fails with "address already in use"; a server restarted on
// its old port is exposed the same way. The ports here come from below
// that range, where only another listener can take them.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// lowest is the first port handed out; below it are the ports of
// well-known services.
const lowest = 15000

var (
	low, high = portRange()
	next      atomic.Uint32
)

func init() { next.Store(rand.Uint32()) }

// portRange is [lowest, the ephemeral range's start), or empty when the
// ephemeral range starts too low to leave room.
func portRange() (int, int) {
	end := 32768 // Linux's default ip_local_port_range starts here
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				end = n
			}
		}
	}
	if end-lowest < 1000 {
		return 0, 0
	}
	return lowest, end
}

// Addr returns 127.0.0.1:port with a port that no one listens on, outside
// the ephemeral range where it can be.
func Addr() (string, error) {
	if span := high - low; span > 0 {
		for range 64 {
			port := low + int(next.Add(1)%uint32(span))
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				continue // taken
			}
			_ = ln.Close()
			return addr, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Port is Addr's port.
func Port() (int, error) {
	addr, err := Addr()
	if err != nil {
		return 0, err
	}
	_, p, _ := net.SplitHostPort(addr)
	return strconv.Atoi(p)
}
