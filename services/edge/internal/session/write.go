package session

import (
	"net"
	"time"

	"github.com/sensorcast/sensorcast/services/edge/internal/wire"
)

// writeLoop is the only writer of the socket. Each time it wakes it takes
// the whole queue and writes it with one vectored write (writev), so a
// busy connection costs one syscall per batch, not one per message. It
// ends after sending a close frame, on a write error, or when the read
// loop has ended (readDone).
func (s *Session) writeLoop(readDone <-chan struct{}) {
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	var batch [][]byte
	for {
		select {
		case <-s.wake:
		case <-ping.C:
			s.Deliver(wire.PingFrame)
			continue
		case <-readDone:
			s.finalFlush()
			return
		}
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		closeFrame := s.closeFrame
		s.drained.Broadcast()
		s.mu.Unlock()

		if closeFrame != nil && len(closeFrame) > 0 {
			batch = append(batch, closeFrame)
		}
		if len(batch) > 0 {
			err := s.write(batch)
			clear(batch)
			batch = batch[:0]
			if err != nil {
				s.closeWithFrame(alreadySent, "write_error")
				_ = s.netConn.Close() // ends the read loop
				return
			}
		}
		if closeFrame != nil {
			// Give the client closeGrace to answer our close frame, then
			// the read deadline ends the read loop.
			_ = s.netConn.SetReadDeadline(time.Now().Add(closeGrace))
			return
		}
	}
}

// finalFlush sends a pending close frame (e.g. the echo of a client's
// close) once the read loop has ended, without waiting long for it.
func (s *Session) finalFlush() {
	s.mu.Lock()
	closeFrame := s.closeFrame
	s.mu.Unlock()
	if len(closeFrame) > 0 {
		_ = s.netConn.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = s.netConn.Write(closeFrame)
	}
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
