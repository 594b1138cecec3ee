// Package server is the registry's gRPC transport: it implements
// registryv1.DeviceRegistryServer on a device.Store, mapping requests to the
// domain and domain errors to gRPC status codes (status.go), and builds the
// grpc.Server around it with its interceptors, health and reflection
// (grpc.go).
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/registry/internal/convert"
	"github.com/sensorcast/sensorcast/services/registry/internal/device"
)

// MaxBatchUpsert is the most devices one BatchUpsertDevices call takes (the
// proto contract's limit; the store itself would take more).
const MaxBatchUpsert = 50_000

// DefaultPollInterval is how often a WatchChanges stream that has caught up
// reads the change log again when nothing wakes it sooner.
const DefaultPollInterval = 200 * time.Millisecond

// Options configure a Server. The zero value works.
type Options struct {
	// Logger receives errors the caller cannot act on (nil: discard).
	Logger *slog.Logger
	// PollInterval is how often caught-up watchers poll the change log
	// (0: DefaultPollInterval). Writes through this Server, and Notify,
	// wake them sooner.
	PollInterval time.Duration
	// AfterWrite, if set, is called after every successful write, e.g. to
	// wake the change announcer. It must not block.
	AfterWrite func()
	// Metrics, if set, counts watch streams.
	Metrics *Metrics
}

// Server implements the DeviceRegistry service.
type Server struct {
	registryv1.UnimplementedDeviceRegistryServer

	store      device.Store
	logger     *slog.Logger
	poll       time.Duration
	afterWrite func()
	metrics    *Metrics

	mu   sync.Mutex
	wake chan struct{} // closed and replaced by Notify
	// done is closed by Close: watch streams end.
	done      chan struct{}
	closeOnce sync.Once

	dummyOnce sync.Once
	dummyHash []byte // compared when a device has no secret, for constant time
}

var _ registryv1.DeviceRegistryServer = (*Server)(nil)

// New returns a Server on store.
func New(store device.Store, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.AfterWrite == nil {
		opts.AfterWrite = func() {}
	}
	return &Server{
		store:      store,
		logger:     opts.Logger,
		poll:       opts.PollInterval,
		afterWrite: opts.AfterWrite,
		metrics:    opts.Metrics,
		wake:       make(chan struct{}),
		done:       make(chan struct{}),
	}
}

// Notify wakes every WatchChanges stream to read the change log now. The
// registry calls it when another replica announces a change.
func (s *Server) Notify() {
	s.mu.Lock()
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

// woken returns a channel closed by the next Notify.
func (s *Server) woken() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wake
}

// Close ends every WatchChanges stream (with UNAVAILABLE) and makes new
// ones fail, so a graceful stop of the grpc.Server does not wait for them.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.done) }) }

// wrote runs after each successful write.
func (s *Server) wrote() {
	s.Notify()
	s.afterWrite()
}

// Devices.

func (s *Server) CreateDevice(ctx context.Context, req *registryv1.CreateDeviceRequest) (*registryv1.CreateDeviceResponse, error) {
	if req.GetDevice() == nil {
		return nil, invalidField("device", "is required")
	}
	d, err := s.store.CreateDevice(ctx, convert.DeviceFromProto(req.GetDevice()))
	if err != nil {
		return nil, s.toStatus(ctx, err, within("device.", deviceFields))
	}
	s.wrote()
	return &registryv1.CreateDeviceResponse{Device: convert.Device(&d)}, nil
}

func (s *Server) GetDevice(ctx context.Context, req *registryv1.GetDeviceRequest) (*registryv1.GetDeviceResponse, error) {
	d, err := s.store.GetDevice(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, err, asIs)
	}
	return &registryv1.GetDeviceResponse{Device: convert.Device(&d)}, nil
}

func (s *Server) UpdateDevice(ctx context.Context, req *registryv1.UpdateDeviceRequest) (*registryv1.UpdateDeviceResponse, error) {
	if req.GetDevice() == nil {
		return nil, invalidField("device", "is required")
	}
	mask, err := resolveMask(req.GetUpdateMask(), deviceMaskPaths)
	if err != nil {
		return nil, err
	}
	in := convert.DeviceFromProto(req.GetDevice())
	d, err := s.store.UpdateDevice(ctx, in.ID, func(d *device.Device) error {
		for _, p := range mask {
			switch p {
			case "display_name":
				d.Name = in.Name
			case "type":
				d.Type = in.Type
			case "groups":
				d.Groups = in.Groups
			case "labels":
				d.Labels = in.Labels
			case "attributes":
				d.Attributes = in.Attributes
			case "enabled":
				d.Enabled = in.Enabled
			}
		}
		return nil
	}, req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, err, within("device.", deviceFields))
	}
	s.wrote()
	return &registryv1.UpdateDeviceResponse{Device: convert.Device(&d)}, nil
}

func (s *Server) DeleteDevice(ctx context.Context, req *registryv1.DeleteDeviceRequest) (*registryv1.DeleteDeviceResponse, error) {
	if err := s.store.DeleteDevice(ctx, req.GetId(), req.GetVersion()); err != nil {
		return nil, s.toStatus(ctx, err, asIs)
	}
	s.wrote()
	return &registryv1.DeleteDeviceResponse{}, nil
}

func (s *Server) ListDevices(ctx context.Context, req *registryv1.ListDevicesRequest) (*registryv1.ListDevicesResponse, error) {
	q := device.DeviceQuery{
		Group:      req.GetGroup(),
		NamePrefix: req.GetNamePrefix(),
		PageSize:   int(req.GetPageSize()),
		PageToken:  req.GetPageToken(),
	}
	sel, err := device.ParseSelector(req.GetLabelSelector())
	if err != nil {
		return nil, s.toStatus(ctx, err, asIs)
	}
	q.Selector = sel
	switch req.GetEnabled() {
	case registryv1.EnabledFilter_ENABLED_FILTER_UNSPECIFIED:
	case registryv1.EnabledFilter_ENABLED_FILTER_ENABLED:
		q.Enabled = ptr(true)
	case registryv1.EnabledFilter_ENABLED_FILTER_DISABLED:
		q.Enabled = ptr(false)
	default:
		return nil, invalidField("enabled", fmt.Sprintf("unknown filter %d", req.GetEnabled()))
	}
	page, err := s.store.ListDevices(ctx, q)
	if err != nil {
		return nil, s.toStatus(ctx, err, asIs)
	}
	return &registryv1.ListDevicesResponse{
		Devices:       convert.Devices(page.Devices),
		NextPageToken: page.NextPageToken,
		TotalSize:     int64(page.TotalSize),
	}, nil
}

func (s *Server) BatchUpsertDevices(ctx context.Context, req *registryv1.BatchUpsertDevicesRequest) (*registryv1.BatchUpsertDevicesResponse, error) {
	n := len(req.GetDevices())
	if n == 0 || n > MaxBatchUpsert {
		return nil, invalidField("devices", fmt.Sprintf("must hold 1 to %d devices, got %d; split larger imports into several calls", MaxBatchUpsert, n))
	}
	in := make([]device.Device, n)
	for i, p := range req.GetDevices() {
		in[i] = convert.DeviceFromProto(p)
	}
	created, updated, err := s.store.UpsertDevices(ctx, in)
	if err != nil {
		return nil, s.toStatus(ctx, err, batchPaths)
	}
	s.wrote()
	return &registryv1.BatchUpsertDevicesResponse{CreatedCount: int32(created), UpdatedCount: int32(updated)}, nil
}

// batchPaths renames "devices[i].name" to "devices[i].display_name".
func batchPaths(field string) string {
	for i := 0; i < len(field); i++ {
		if field[i] == '.' {
			return field[:i+1] + within("", deviceFields)(field[i+1:])
		}
	}
	return field
}

func (s *Server) SetDeviceSecret(ctx context.Context, req *registryv1.SetDeviceSecretRequest) (*registryv1.SetDeviceSecretResponse, error) {
	var hash []byte
	if req.GetSecret() != "" {
		h, err := device.HashSecret(req.GetSecret()) // before the row lock: it takes tens of milliseconds
		if err != nil {
			return nil, s.toStatus(ctx, err, asIs)
		}
		hash = h
	}
	d, err := s.store.UpdateDevice(ctx, req.GetDeviceId(), func(d *device.Device) error {
		d.SecretHash = hash
		return nil
	}, req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, err, func(f string) string {
			if f == "id" {
				return "device_id"
			}
			return f
		})
	}
	s.wrote()
	return &registryv1.SetDeviceSecretResponse{HasSecret: len(d.SecretHash) > 0, Version: d.Version}, nil
}

func (s *Server) VerifyDeviceSecret(ctx context.Context, req *registryv1.VerifyDeviceSecretRequest) (*registryv1.VerifyDeviceSecretResponse, error) {
	d, err := s.store.GetDevice(ctx, req.GetDeviceId())
	switch {
	case errors.Is(err, device.ErrNotFound), errors.Is(err, device.ErrInvalid):
		d = device.Device{}
	case err != nil:
		return nil, s.toStatus(ctx, err, asIs)
	}
	hash := d.SecretHash
	if len(hash) == 0 {
		// Spend the same time as a real check, so the answer's timing
		// does not tell which devices exist or have a secret.
		hash = s.dummy()
	}
	match := device.VerifySecret(hash, req.GetSecret())
	return &registryv1.VerifyDeviceSecretResponse{Valid: match && d.Enabled && len(d.SecretHash) > 0}, nil
}

func (s *Server) dummy() []byte {
	s.dummyOnce.Do(func() {
		s.dummyHash, _ = device.HashSecret("not-a-secret-of-any-device")
	})
	return s.dummyHash
}

// Groups.

func (s *Server) CreateGroup(ctx context.Context, req *registryv1.CreateGroupRequest) (*registryv1.CreateGroupResponse, error) {
	if req.GetGroup() == nil {
		return nil, invalidField("group", "is required")
	}
	g, err := s.store.CreateGroup(ctx, convert.GroupFromProto(req.GetGroup()))
	if err != nil {
		return nil, s.toStatus(ctx, err, within("group.", nil))
	}
	s.wrote()
	return &registryv1.CreateGroupResponse{Group: convert.Group(&g)}, nil
}

func (s *Server) GetGroup(ctx context.Context, req *registryv1.GetGroupRequest) (*registryv1.GetGroupResponse, error) {
	g, err := s.store.GetGroup(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, err, asIs)
	}
	return &registryv1.GetGroupResponse{Group: convert.Group(&g)}, nil
}

func (s *Server) UpdateGroup(ctx context.Context, req *registryv1.UpdateGroupRequest) (*registryv1.UpdateGroupResponse, error) {
	if req.GetGroup() == nil {
		return nil, invalidField("group", "is required")
	}
	mask, err := resolveMask(req.GetUpdateMask(), groupMaskPaths)
	if err != nil {
		return nil, err
	}
	in := convert.GroupFromProto(req.GetGroup())
	g, err := s.store.UpdateGroup(ctx, in.ID, func(g *device.Group) error {
		for _, p := range mask {
			switch p {
			case "display_name":
				g.DisplayName = in.DisplayName
			case "description":
				g.Description = in.Description
			case "labels":
				g.Labels = in.Labels
			}
		}
		return nil
	}, req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, err, within("group.", nil))
	}
	s.wrote()
	return &registryv1.UpdateGroupResponse{Group: convert.Group(&g)}, nil
}

func (s *Server) DeleteGroup(ctx context.Context, req *registryv1.DeleteGroupRequest) (*registryv1.DeleteGroupResponse, error) {
	if err := s.store.DeleteGroup(ctx, req.GetId(), req.GetForce()); err != nil {
		return nil, s.toStatus(ctx, err, asIs)
	}
	s.wrote()
	return &registryv1.DeleteGroupResponse{}, nil
}

func (s *Server) ListGroups(ctx context.Context, req *registryv1.ListGroupsRequest) (*registryv1.ListGroupsResponse, error) {
	page, err := s.store.ListGroups(ctx, device.GroupQuery{PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, s.toStatus(ctx, err, asIs)
	}
	out := &registryv1.ListGroupsResponse{NextPageToken: page.NextPageToken, TotalSize: int64(page.TotalSize)}
	for i := range page.Groups {
		out.Groups = append(out.Groups, convert.Group(&page.Groups[i]))
	}
	return out, nil
}

func (s *Server) ListGroupMembers(ctx context.Context, req *registryv1.ListGroupMembersRequest) (*registryv1.ListGroupMembersResponse, error) {
	page, err := s.store.ListGroupMembers(ctx, device.MembersQuery{GroupID: req.GetGroupId(), PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()})
	if err != nil {
		return nil, s.toStatus(ctx, err, asIs)
	}
	return &registryv1.ListGroupMembersResponse{
		Devices:       convert.Devices(page.Devices),
		NextPageToken: page.NextPageToken,
		TotalSize:     int64(page.TotalSize),
	}, nil
}

// Alert rules.

// rulePaths maps a rule's domain fields to request paths: the target's kind
// and id are the oneof's fields.
func rulePaths(prefix string, t device.Target) paths {
	return func(field string) string {
		switch field {
		case "target.kind":
			return prefix + "target"
		case "target.id":
			if t.Kind == device.TargetGroup {
				return prefix + "group_id"
			}
			return prefix + "device_id"
		}
		return prefix + field
	}
}

func (s *Server) CreateAlertRule(ctx context.Context, req *registryv1.CreateAlertRuleRequest) (*registryv1.CreateAlertRuleResponse, error) {
	if req.GetAlertRule() == nil {
		return nil, invalidField("alert_rule", "is required")
	}
	in, err := convert.RuleFromProto(req.GetAlertRule())
	p := rulePaths("alert_rule.", convert.TargetFromProto(req.GetAlertRule()))
	if err != nil {
		return nil, s.toStatus(ctx, err, p)
	}
	if in.ID == "" {
		in.ID = device.NewRuleID()
	}
	r, err := s.store.CreateRule(ctx, in)
	if err != nil {
		return nil, s.toStatus(ctx, err, p)
	}
	s.wrote()
	return &registryv1.CreateAlertRuleResponse{AlertRule: convert.Rule(&r)}, nil
}

func (s *Server) GetAlertRule(ctx context.Context, req *registryv1.GetAlertRuleRequest) (*registryv1.GetAlertRuleResponse, error) {
	r, err := s.store.GetRule(ctx, req.GetId())
	if err != nil {
		return nil, s.toStatus(ctx, err, asIs)
	}
	return &registryv1.GetAlertRuleResponse{AlertRule: convert.Rule(&r)}, nil
}

func (s *Server) UpdateAlertRule(ctx context.Context, req *registryv1.UpdateAlertRuleRequest) (*registryv1.UpdateAlertRuleResponse, error) {
	if req.GetAlertRule() == nil {
		return nil, invalidField("alert_rule", "is required")
	}
	mask, err := resolveMask(req.GetUpdateMask(), ruleMaskPaths)
	if err != nil {
		return nil, err
	}
	p := rulePaths("alert_rule.", convert.TargetFromProto(req.GetAlertRule()))
	in, err := convert.RuleFromProto(req.GetAlertRule())
	if err != nil {
		return nil, s.toStatus(ctx, err, p)
	}
	r, err := s.store.UpdateRule(ctx, in.ID, func(r *device.AlertRule) error {
		for _, path := range mask {
			switch path {
			case "name":
				r.Name = in.Name
			case "device_id", "group_id":
				r.Target = in.Target
			case "field":
				r.Field = in.Field
			case "operator":
				r.Operator = in.Operator
			case "threshold":
				r.Threshold = in.Threshold
			case "severity":
				r.Severity = in.Severity
			case "hold":
				r.Hold = in.Hold
			case "cooldown":
				r.Cooldown = in.Cooldown
			case "enabled":
				r.Enabled = in.Enabled
			}
		}
		return nil
	}, req.GetVersion())
	if err != nil {
		return nil, s.toStatus(ctx, err, p)
	}
	s.wrote()
	return &registryv1.UpdateAlertRuleResponse{AlertRule: convert.Rule(&r)}, nil
}

func (s *Server) DeleteAlertRule(ctx context.Context, req *registryv1.DeleteAlertRuleRequest) (*registryv1.DeleteAlertRuleResponse, error) {
	if err := s.store.DeleteRule(ctx, req.GetId(), req.GetVersion()); err != nil {
		return nil, s.toStatus(ctx, err, asIs)
	}
	s.wrote()
	return &registryv1.DeleteAlertRuleResponse{}, nil
}

func (s *Server) ListAlertRules(ctx context.Context, req *registryv1.ListAlertRulesRequest) (*registryv1.ListAlertRulesResponse, error) {
	q := device.RuleQuery{PageSize: int(req.GetPageSize()), PageToken: req.GetPageToken()}
	switch t := req.GetTarget().(type) {
	case *registryv1.ListAlertRulesRequest_DeviceId:
		q.TargetKind, q.TargetID = device.TargetDevice, t.DeviceId
	case *registryv1.ListAlertRulesRequest_GroupId:
		q.TargetKind, q.TargetID = device.TargetGroup, t.GroupId
	}
	page, err := s.store.ListRules(ctx, q)
	if err != nil {
		return nil, s.toStatus(ctx, err, func(f string) string {
			if f == "target_id" && q.TargetKind == device.TargetGroup {
				return "group_id"
			}
			if f == "target_id" {
				return "device_id"
			}
			return f
		})
	}
	out := &registryv1.ListAlertRulesResponse{NextPageToken: page.NextPageToken, TotalSize: int64(page.TotalSize)}
	for i := range page.Rules {
		out.AlertRules = append(out.AlertRules, convert.Rule(&page.Rules[i]))
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }
