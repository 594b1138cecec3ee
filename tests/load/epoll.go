package load

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"
)

// The epoll reader (the default): connections are set up with the net
// package, then their sockets are taken over by a few event loops that
// each wait on an epoll set and do one read(2) per readiness event. That
// costs one system call per delivery batch, where a goroutine per
// connection costs a second read that ends in EAGAIN, a park and a
// scheduler wake-up: at hundreds of thousands of deliveries per second on
// one core, the difference decides whether the generator or the edge is
// measured.

// fdConn is a non-blocking socket owned by an epoll loop.
type fdConn struct{ fd int }

func (f *fdConn) Read(p []byte) (int, error) {
	for {
		n, err := syscall.Read(f.fd, p)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 {
			return 0, errEOF
		}
		return n, nil
	}
}

var errEOF = errors.New("connection closed by the edge without a close frame")

// writeAll writes a small control frame; the socket buffer is nearly
// always free, and a client that cannot even send a pong is failing anyway.
func (f *fdConn) writeAll(b []byte) error {
	for tries := 0; len(b) > 0; {
		n, err := syscall.Write(f.fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			if tries++; tries > 100 {
				return err
			}
			time.Sleep(time.Millisecond)
			continue
		case err != nil:
			return err
		}
		b = b[n:]
	}
	return nil
}

// detach takes a connected TCP socket away from the net package: it
// duplicates the descriptor (which stays non-blocking: the flag belongs to
// the shared open file) and closes the original, which also removes it
// from the Go runtime's poller.
func detach(conn net.Conn) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0, fmt.Errorf("%T has no descriptor", conn)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = syscall.Dup(int(fd))
	}); err != nil {
		return 0, err
	}
	if derr != nil {
		return 0, fmt.Errorf("dup: %w", derr)
	}
	syscall.CloseOnExec(nfd)
	if err := syscall.SetNonblock(nfd, true); err != nil {
		syscall.Close(nfd)
		return 0, err
	}
	_ = conn.Close()
	return nfd, nil
}

// epollLoop serves the connections added to it until stopped.
type epollLoop struct {
	epfd    int
	env     *clientEnv
	mu      sync.Mutex
	clients map[int]*client // by fd
	added   []*client       // added since the last wait: parse what they buffered
	stopped bool
	done    chan struct{}
}

func newEpollLoop(env *clientEnv) (*epollLoop, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	l := &epollLoop{epfd: epfd, env: env, clients: map[int]*client{}, done: make(chan struct{})}
	go l.run()
	return l, nil
}

// add hands c's socket to the loop.
func (l *epollLoop) add(c *client) error {
	fd, err := detach(c.conn)
	if err != nil {
		return err
	}
	c.rd.fd = fd
	l.mu.Lock()
	l.clients[fd] = c
	l.added = append(l.added, c)
	l.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	return nil
}

func (l *epollLoop) run() {
	defer close(l.done)
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(l.epfd, events, 50)
		if err != nil && err != syscall.EINTR {
			return
		}
		l.mu.Lock()
		stopped := l.stopped
		added := l.added
		l.added = nil
		l.mu.Unlock()
		if stopped {
			return
		}
		for _, c := range added {
			if c.fr.Buffered() > 0 {
				need, done := c.process(l.env, time.Now().UnixNano())
				c.need = need
				if done {
					l.remove(c)
				}
			}
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			l.mu.Lock()
			c := l.clients[fd]
			l.mu.Unlock()
			if c == nil {
				continue
			}
			if c.readable(l.env) {
				l.remove(c)
			}
		}
	}
}

func (l *epollLoop) remove(c *client) {
	l.mu.Lock()
	if _, ok := l.clients[c.rd.fd]; !ok {
		l.mu.Unlock()
		return
	}
	delete(l.clients, c.rd.fd)
	l.mu.Unlock()
	_ = syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, c.rd.fd, nil)
	_ = syscall.Close(c.rd.fd)
}

// stop ends the loop and closes every socket it still holds.
func (l *epollLoop) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
	<-l.done
	for fd := range l.clients {
		_ = syscall.Close(fd)
	}
	l.clients = nil
	_ = syscall.Close(l.epfd)
}
