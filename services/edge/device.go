package edge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/edge/internal/devicews"
	"github.com/sensorcast/sensorcast/services/internal/room"
)

// secretCheckTimeout bounds the registry's check of a device credential.
const secretCheckTimeout = 5 * time.Second

// serveDeviceWS upgrades a device's connection (protocol.md section 3)
// once it has proved who it is: with a token carrying a device_id claim
// (query parameter token or a Bearer header), or with its registry
// credential as HTTP Basic auth (device id and secret).
func (s *Service) serveDeviceWS(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "server is draining; reconnect", Code: "unavailable"})
		return
	}
	deviceID, status, err := s.authenticateDevice(r)
	if err != nil {
		code := map[int]string{http.StatusForbidden: "forbidden", http.StatusServiceUnavailable: "unavailable"}[status]
		if code == "" {
			code = "unauthorized"
		}
		writeJSON(w, status, apiError{Error: err.Error(), Code: code})
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	cfg := s.cfg.Session
	conn := devicews.New(deviceID, ws, s.conns[0], s.js, devicews.Config{
		ReadLimit: cfg.MaxMessageBytes, PingInterval: cfg.PingInterval, IdleTimeout: cfg.PongTimeout,
		WriteTimeout: cfg.WriteTimeout, Rate: cfg.RateLimit, Burst: cfg.RateBurst,
		Tracer: s.tracer,
	}, s.devices, s.logger)
	if !s.track(conn, ws) {
		return
	}
	go func() {
		defer s.wg.Done()
		conn.Run(s.sessionsCtx)
		s.forget(conn)
	}()
}

// authenticateDevice returns the id of the device a request proves to be,
// or the HTTP status and reason to refuse it with.
func (s *Service) authenticateDevice(r *http.Request) (string, int, error) {
	var deviceID string
	if id, secret, basic := r.BasicAuth(); basic {
		if s.secrets == nil {
			return "", http.StatusUnauthorized, errors.New("device credentials need the registry; connect with a device token")
		}
		if room.CheckID(id) != nil {
			return "", http.StatusUnauthorized, errors.New("invalid device credentials")
		}
		ctx, cancel := context.WithTimeout(r.Context(), secretCheckTimeout)
		defer cancel()
		resp, err := s.secrets.VerifyDeviceSecret(ctx, &registryv1.VerifyDeviceSecretRequest{DeviceId: id, Secret: secret})
		if err != nil {
			s.logger.Warn("device credential check failed", "device_id", id, "err", err)
			return "", http.StatusServiceUnavailable, errors.New("device credentials cannot be checked right now; retry")
		}
		if !resp.GetValid() {
			return "", http.StatusUnauthorized, errors.New("invalid device credentials")
		}
		deviceID = id
	} else {
		claims, err := s.verifier.Verify(requestToken(r))
		if err != nil {
			return "", http.StatusUnauthorized, err
		}
		if claims.DeviceID == "" {
			return "", http.StatusUnauthorized, errors.New("token has no device_id claim")
		}
		if room.CheckID(claims.DeviceID) != nil {
			return "", http.StatusUnauthorized, errors.New("token's device_id is not a valid device id")
		}
		deviceID = claims.DeviceID
	}
	if s.catalog != nil {
		d, ok := s.catalog.Lookup(deviceID)
		switch {
		case !s.catalog.Ready():
			return "", http.StatusServiceUnavailable, errors.New("device registry not loaded yet; retry")
		case !ok:
			return "", http.StatusForbidden, fmt.Errorf("device %q is not in the registry", deviceID)
		case !d.Enabled:
			return "", http.StatusForbidden, fmt.Errorf("device %q is disabled", deviceID)
		}
	}
	return deviceID, 0, nil
}
