package session

import (
	"net"
	"time"
)

// flush is the session's writer while it has something to write. Each
// round takes the whole queue and writes it with one vectored write
// (writev), so a busy connection costs one syscall per batch, not one per
// message. It returns when the queue is empty (an idle connection has no
// writer goroutine), after sending the close frame, or on a write error.
func (s *Session) flush() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 && (s.closeFrame == nil || s.closeSent) {
			s.flushing = false
			s.drained.Broadcast()
			s.mu.Unlock()
			return
		}
		batch := s.queue
		s.queue = s.spare[:0]
		s.spare = nil
		closeFrame := s.closeFrame
		if closeFrame != nil {
			s.closeSent = true
		}
		s.drained.Broadcast()
		s.mu.Unlock()

		if len(closeFrame) > 0 {
			batch = append(batch, closeFrame)
		}
		var err error
		if len(batch) > 0 {
			err = s.write(batch)
		}
		clear(batch)
		s.mu.Lock()
		s.spare = batch[:0]
		s.mu.Unlock()

		if err != nil || closeFrame != nil {
			if err != nil {
				s.closeWithFrame(alreadySent, "write_error")
				_ = s.netConn.Close() // ends the read loop
			} else {
				// Give the client closeGrace to answer our close frame;
				// then the read deadline ends the read loop.
				_ = s.netConn.SetReadDeadline(time.Now().Add(closeGrace))
			}
			s.mu.Lock()
			s.closeSent = true
			s.flushing = false
			s.drained.Broadcast()
			s.mu.Unlock()
			return
		}
	}
}

// finish runs once the read loop has ended: it waits for a running
// flusher, sends a close frame nobody has sent yet (e.g. the echo of the
// client's close) without waiting long, and closes the socket.
func (s *Session) finish() {
	s.mu.Lock()
	if s.closeFrame == nil {
		s.closeFrame = alreadySent // nothing more may be queued
	}
	for s.flushing {
		s.drained.Wait()
	}
	closeFrame := s.closeFrame
	pending := !s.closeSent
	s.closeSent = true
	s.queue, s.spare = nil, nil
	s.mu.Unlock()
	if pending && len(closeFrame) > 0 {
		_ = s.netConn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = s.netConn.Write(closeFrame)
	}
	_ = s.netConn.Close()
}

func (s *Session) write(batch [][]byte) error {
	if err := s.netConn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
		return err
	}
	s.metrics.QueueDepth.Observe(float64(len(batch)))
	s.metrics.FramesWritten.Add(float64(len(batch)))
	bufs := net.Buffers(batch)
	_, err := bufs.WriteTo(s.netConn)
	return err
}
