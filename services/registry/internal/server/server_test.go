package server_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
	"github.com/sensorcast/sensorcast/services/registry/internal/server"
)

// badRequestFields returns the fields of st's google.rpc.BadRequest.
func badRequestFields(t *testing.T, st *status.Status) []string {
	t.Helper()
	var fields []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if fields == nil {
		t.Fatalf("status %v has no BadRequest details", st)
	}
	return fields
}

func mask(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

func TestEveryStatusCode(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := admin(t)
		mustCreateGroup(t, e, "g1")
		d := mustCreateDevice(t, e, &registryv1.Device{Id: "d1", Groups: []string{"g1"}})

		t.Run("invalid input is INVALID_ARGUMENT with a field violation per problem", func(t *testing.T) {
			_, err := e.client.CreateDevice(ctx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{
				Id: "bad id", DisplayName: strings.Repeat("n", 201), Labels: map[string]string{"k": "v v"},
			}})
			st := wantCode(t, err, codes.InvalidArgument)
			if got, want := badRequestFields(t, st), []string{"device.id", "device.display_name", "device.labels"}; !slices.Equal(got, want) {
				t.Errorf("fields = %q, want %q", got, want)
			}
		})
		t.Run("a malformed selector is INVALID_ARGUMENT on label_selector", func(t *testing.T) {
			_, err := e.client.ListDevices(ctx, &registryv1.ListDevicesRequest{LabelSelector: "site in (a"})
			st := wantCode(t, err, codes.InvalidArgument)
			if got := badRequestFields(t, st); !slices.Equal(got, []string{"label_selector"}) {
				t.Errorf("fields = %q", got)
			}
		})
		t.Run("a missing device is NOT_FOUND", func(t *testing.T) {
			_, err := e.client.GetDevice(ctx, &registryv1.GetDeviceRequest{Id: "nope"})
			wantCode(t, err, codes.NotFound)
			_, err = e.client.DeleteAlertRule(ctx, &registryv1.DeleteAlertRuleRequest{Id: "nope"})
			wantCode(t, err, codes.NotFound)
			_, err = e.client.ListGroupMembers(ctx, &registryv1.ListGroupMembersRequest{GroupId: "nope"})
			wantCode(t, err, codes.NotFound)
		})
		t.Run("a taken id is ALREADY_EXISTS", func(t *testing.T) {
			_, err := e.client.CreateDevice(ctx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{Id: "d1"}})
			wantCode(t, err, codes.AlreadyExists)
			_, err = e.client.CreateGroup(ctx, &registryv1.CreateGroupRequest{Group: &registryv1.Group{Id: "g1"}})
			wantCode(t, err, codes.AlreadyExists)
		})
		t.Run("a stale version is ABORTED and writes nothing", func(t *testing.T) {
			_, err := e.client.UpdateDevice(ctx, &registryv1.UpdateDeviceRequest{
				Device: &registryv1.Device{Id: "d1", DisplayName: "x"}, UpdateMask: mask("display_name"), Version: d.GetVersion() + 5,
			})
			wantCode(t, err, codes.Aborted)
			_, err = e.client.DeleteDevice(ctx, &registryv1.DeleteDeviceRequest{Id: "d1", Version: 99})
			wantCode(t, err, codes.Aborted)
			got, err := e.client.GetDevice(ctx, &registryv1.GetDeviceRequest{Id: "d1"})
			if err != nil || got.GetDevice().GetVersion() != d.GetVersion() || got.GetDevice().GetDisplayName() != "" {
				t.Fatalf("after ABORTED: %v, %v", got, err)
			}
		})
		t.Run("a missing group is FAILED_PRECONDITION naming the field", func(t *testing.T) {
			_, err := e.client.CreateDevice(ctx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{Id: "d2", Groups: []string{"ghost"}}})
			st := wantCode(t, err, codes.FailedPrecondition)
			var subjects []string
			for _, det := range st.Details() {
				if pf, ok := det.(*errdetails.PreconditionFailure); ok {
					for _, v := range pf.GetViolations() {
						subjects = append(subjects, v.GetSubject())
					}
				}
			}
			if !slices.Equal(subjects, []string{"device.groups"}) || !strings.Contains(st.Message(), "ghost") {
				t.Errorf("subjects = %q, message %q", subjects, st.Message())
			}
		})
		t.Run("deleting a group with members is FAILED_PRECONDITION unless forced", func(t *testing.T) {
			_, err := e.client.DeleteGroup(ctx, &registryv1.DeleteGroupRequest{Id: "g1"})
			st := wantCode(t, err, codes.FailedPrecondition)
			if len(st.Details()) == 0 {
				t.Error("no details")
			}
			if _, err := e.client.DeleteGroup(ctx, &registryv1.DeleteGroupRequest{Id: "g1", Force: true}); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("a request without a token is UNAUTHENTICATED", func(t *testing.T) {
			_, err := e.client.GetDevice(t.Context(), &registryv1.GetDeviceRequest{Id: "d1"})
			wantCode(t, err, codes.Unauthenticated)
			for name, header := range map[string]string{
				"another key": "Bearer " + tokenFor(t, "another-secret-of-enough-length", "x", "admin"),
				"basic auth":  "Basic YTpi",
				"garbage":     "Bearer not.a.jwt",
			} {
				ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", header)
				_, err := e.client.GetDevice(ctx, &registryv1.GetDeviceRequest{Id: "d1"})
				if status.Code(err) != codes.Unauthenticated {
					t.Errorf("%s: err = %v, want UNAUTHENTICATED", name, err)
				}
			}
			stream, err := e.client.WatchChanges(t.Context(), &registryv1.WatchChangesRequest{})
			if err == nil {
				_, err = stream.Recv()
			}
			wantCode(t, err, codes.Unauthenticated)
		})
		t.Run("a token without the admin role is PERMISSION_DENIED", func(t *testing.T) {
			ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+tokenFor(t, secret, "viewer", "viewer"))
			_, err := e.client.ListDevices(ctx, &registryv1.ListDevicesRequest{})
			wantCode(t, err, codes.PermissionDenied)
		})
	})
}

func TestOutOfRangeWhenTheChangesAreNoLongerKept(t *testing.T) {
	forEachStoreWithLog(t, 3, func(t *testing.T, e *env) {
		for i := range 6 {
			mustCreateGroup(t, e, fmt.Sprintf("g%d", i))
		}
		stream, err := e.client.WatchChanges(admin(t), &registryv1.WatchChangesRequest{ResumeAfter: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		wantCode(t, err, codes.OutOfRange)
	})
}

func TestUpdateMasks(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := admin(t)
		mustCreateGroup(t, e, "a", "b")
		mustCreateDevice(t, e, &registryv1.Device{Id: "d", DisplayName: "old", Type: "t1", Groups: []string{"a"}, Labels: map[string]string{"site": "x"}})

		for name, tc := range map[string]struct {
			paths []string
			want  string // in the message
		}{
			"an empty mask":         {nil, "must name the fields"},
			"an unknown path":       {[]string{"display_name", "colour"}, `"colour"`},
			"the id":                {[]string{"id"}, `"id"`},
			"an output-only field":  {[]string{"version"}, `"version"`},
			"a path into a map key": {[]string{"labels.site"}, `"labels.site"`},
		} {
			t.Run(name+" is INVALID_ARGUMENT on update_mask", func(t *testing.T) {
				_, err := e.client.UpdateDevice(ctx, &registryv1.UpdateDeviceRequest{Device: &registryv1.Device{Id: "d"}, UpdateMask: mask(tc.paths...)})
				st := wantCode(t, err, codes.InvalidArgument)
				if got := badRequestFields(t, st); !slices.Equal(got, []string{"update_mask"}) || !strings.Contains(st.Message(), tc.want) {
					t.Errorf("fields %q, message %q, want it to mention %s", got, st.Message(), tc.want)
				}
			})
		}

		t.Run("only the named fields change", func(t *testing.T) {
			resp, err := e.client.UpdateDevice(ctx, &registryv1.UpdateDeviceRequest{
				Device:     &registryv1.Device{Id: "d", DisplayName: "new", Type: "ignored", Groups: []string{"b", "a", "b"}},
				UpdateMask: mask("display_name", "groups"),
			})
			if err != nil {
				t.Fatal(err)
			}
			got := resp.GetDevice()
			if got.GetDisplayName() != "new" || got.GetType() != "t1" || !slices.Equal(got.GetGroups(), []string{"a", "b"}) ||
				got.GetLabels()["site"] != "x" || got.GetVersion() != 2 {
				t.Errorf("device = %v", got)
			}
		})
		t.Run("* replaces every editable field", func(t *testing.T) {
			resp, err := e.client.UpdateDevice(ctx, &registryv1.UpdateDeviceRequest{
				Device: &registryv1.Device{Id: "d", Enabled: true}, UpdateMask: mask("*"),
			})
			if err != nil {
				t.Fatal(err)
			}
			got := resp.GetDevice()
			if got.GetDisplayName() != "" || got.GetType() != "" || len(got.GetGroups()) != 0 || len(got.GetLabels()) != 0 || !got.GetEnabled() {
				t.Errorf("device = %v", got)
			}
		})
		t.Run("an invalid new value names the request's path", func(t *testing.T) {
			_, err := e.client.UpdateDevice(ctx, &registryv1.UpdateDeviceRequest{
				Device: &registryv1.Device{Id: "d", DisplayName: "bad\x01name"}, UpdateMask: mask("display_name"),
			})
			st := wantCode(t, err, codes.InvalidArgument)
			if got := badRequestFields(t, st); !slices.Equal(got, []string{"device.display_name"}) {
				t.Errorf("fields = %q", got)
			}
		})
		t.Run("groups take display_name, description and labels", func(t *testing.T) {
			resp, err := e.client.UpdateGroup(ctx, &registryv1.UpdateGroupRequest{
				Group: &registryv1.Group{Id: "a", DisplayName: "A", Description: "not this"}, UpdateMask: mask("display_name"),
			})
			if err != nil || resp.GetGroup().GetDisplayName() != "A" || resp.GetGroup().GetDescription() != "" {
				t.Fatalf("UpdateGroup = %v, %v", resp, err)
			}
			_, err = e.client.UpdateGroup(ctx, &registryv1.UpdateGroupRequest{Group: &registryv1.Group{Id: "a"}, UpdateMask: mask("member_count")})
			wantCode(t, err, codes.InvalidArgument)
		})
		t.Run("a rule's target moves with either target path", func(t *testing.T) {
			created, err := e.client.CreateAlertRule(ctx, &registryv1.CreateAlertRuleRequest{AlertRule: &registryv1.AlertRule{
				Name: "hot", Target: &registryv1.AlertRule_DeviceId{DeviceId: "d"}, Field: "temperature",
				Operator: registryv1.Operator_OPERATOR_GT, Threshold: 30, Severity: registryv1.Severity_SEVERITY_WARNING,
				Hold: durationpb.New(0),
			}})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(created.GetAlertRule().GetId(), "rule-") {
				t.Errorf("assigned id = %q", created.GetAlertRule().GetId())
			}
			resp, err := e.client.UpdateAlertRule(ctx, &registryv1.UpdateAlertRuleRequest{
				AlertRule:  &registryv1.AlertRule{Id: created.GetAlertRule().GetId(), Target: &registryv1.AlertRule_GroupId{GroupId: "a"}, Threshold: 99},
				UpdateMask: mask("device_id"),
			})
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetAlertRule().GetGroupId() != "a" || resp.GetAlertRule().GetThreshold() != 30 {
				t.Errorf("rule = %v", resp.GetAlertRule())
			}
			_, err = e.client.UpdateAlertRule(ctx, &registryv1.UpdateAlertRuleRequest{
				AlertRule: &registryv1.AlertRule{Id: created.GetAlertRule().GetId()}, UpdateMask: mask("group_id", "operator"),
			})
			st := wantCode(t, err, codes.InvalidArgument)
			if got := badRequestFields(t, st); !slices.Equal(got, []string{"alert_rule.target", "alert_rule.device_id", "alert_rule.operator"}) {
				t.Errorf("fields = %q", got)
			}
		})
	})
}

func TestSecretsAreNeverReturned(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := admin(t)
		stream, err := e.client.WatchChanges(ctx, &registryv1.WatchChangesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil { // live
			t.Fatal(err)
		}
		mustCreateDevice(t, e, &registryv1.Device{Id: "d", Enabled: true})
		const deviceSecret = "correct horse battery staple"
		set, err := e.client.SetDeviceSecret(ctx, &registryv1.SetDeviceSecretRequest{DeviceId: "d", Secret: deviceSecret})
		if err != nil || !set.GetHasSecret() || set.GetVersion() != 2 {
			t.Fatalf("SetDeviceSecret = %v, %v", set, err)
		}
		_, err = e.client.SetDeviceSecret(ctx, &registryv1.SetDeviceSecretRequest{DeviceId: "d", Secret: "short"})
		if st := wantCode(t, err, codes.InvalidArgument); !slices.Equal(badRequestFields(t, st), []string{"secret"}) {
			t.Error("a short secret is not reported on field secret")
		}

		var seen []proto.Message
		get, err := e.client.GetDevice(ctx, &registryv1.GetDeviceRequest{Id: "d"})
		if err != nil || !get.GetDevice().GetHasSecret() {
			t.Fatalf("GetDevice = %v, %v", get, err)
		}
		list, err := e.client.ListDevices(ctx, &registryv1.ListDevicesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		upd, err := e.client.UpdateDevice(ctx, &registryv1.UpdateDeviceRequest{Device: &registryv1.Device{Id: "d", Enabled: true}, UpdateMask: mask("enabled")})
		if err != nil || !upd.GetDevice().GetHasSecret() {
			t.Fatalf("UpdateDevice = %v, %v", upd, err)
		}
		seen = append(seen, get, list, upd)
		var changes int
		for changes < 3 {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			changes += len(resp.GetChanges())
			seen = append(seen, resp)
		}
		for _, m := range seen {
			b, _ := proto.Marshal(m)
			if bytes.Contains(b, []byte("argon2id")) || bytes.Contains(b, []byte(deviceSecret)) {
				t.Errorf("a response carries the secret or its hash: %v", m)
			}
		}

		for name, tc := range map[string]struct {
			id, secret string
			want       bool
		}{
			"the right secret":  {"d", deviceSecret, true},
			"a wrong secret":    {"d", "wrong horse battery staple", false},
			"an unknown device": {"ghost", deviceSecret, false},
			"an invalid id":     {"bad id", deviceSecret, false},
		} {
			resp, err := e.client.VerifyDeviceSecret(ctx, &registryv1.VerifyDeviceSecretRequest{DeviceId: tc.id, Secret: tc.secret})
			if err != nil || resp.GetValid() != tc.want {
				t.Errorf("%s: VerifyDeviceSecret = %v, %v; want %v", name, resp, err, tc.want)
			}
		}
		if _, err := e.client.UpdateDevice(ctx, &registryv1.UpdateDeviceRequest{Device: &registryv1.Device{Id: "d"}, UpdateMask: mask("enabled")}); err != nil {
			t.Fatal(err)
		}
		if resp, err := e.client.VerifyDeviceSecret(ctx, &registryv1.VerifyDeviceSecretRequest{DeviceId: "d", Secret: deviceSecret}); err != nil || resp.GetValid() {
			t.Errorf("a disabled device's secret verified: %v, %v", resp, err)
		}
		if resp, err := e.client.SetDeviceSecret(ctx, &registryv1.SetDeviceSecretRequest{DeviceId: "d"}); err != nil || resp.GetHasSecret() {
			t.Errorf("removing the secret: %v, %v", resp, err)
		}
	})
}

func TestBatchUpsertAndPaging(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx := admin(t)
		mustCreateGroup(t, e, "fleet")
		const n = 10_000
		devices := make([]*registryv1.Device, n)
		for i := range devices {
			devices[i] = &registryv1.Device{
				Id: fmt.Sprintf("dev-%05d", i), Groups: []string{"fleet"}, Enabled: i%2 == 0,
				Labels: map[string]string{"site": fmt.Sprintf("s%d", i%4)},
			}
		}
		resp, err := e.client.BatchUpsertDevices(ctx, &registryv1.BatchUpsertDevicesRequest{Devices: devices})
		if err != nil || resp.GetCreatedCount() != n || resp.GetUpdatedCount() != 0 {
			t.Fatalf("BatchUpsertDevices = %v, %v", resp, err)
		}
		resp, err = e.client.BatchUpsertDevices(ctx, &registryv1.BatchUpsertDevicesRequest{Devices: devices[:10]})
		if err != nil || resp.GetCreatedCount() != 0 || resp.GetUpdatedCount() != 10 {
			t.Fatalf("second BatchUpsertDevices = %v, %v", resp, err)
		}

		t.Run("an invalid element fails the batch, naming it", func(t *testing.T) {
			bad := []*registryv1.Device{{Id: "new-1"}, {Id: "new-2", DisplayName: "x\x00"}, {Id: "new-3", Groups: []string{"ghost"}}}
			_, err := e.client.BatchUpsertDevices(ctx, &registryv1.BatchUpsertDevicesRequest{Devices: bad})
			st := wantCode(t, err, codes.InvalidArgument)
			if got := badRequestFields(t, st); !slices.Equal(got, []string{"devices[1].display_name"}) {
				t.Errorf("fields = %q", got)
			}
			_, err = e.client.GetDevice(ctx, &registryv1.GetDeviceRequest{Id: "new-1"})
			wantCode(t, err, codes.NotFound)
		})
		t.Run("more than 50,000 devices, or none, is INVALID_ARGUMENT", func(t *testing.T) {
			big := make([]*registryv1.Device, server.MaxBatchUpsert+1)
			for i := range big {
				big[i] = &registryv1.Device{Id: fmt.Sprintf("x%d", i)}
			}
			_, err := e.client.BatchUpsertDevices(ctx, &registryv1.BatchUpsertDevicesRequest{Devices: big})
			wantCode(t, err, codes.InvalidArgument)
			_, err = e.client.BatchUpsertDevices(ctx, &registryv1.BatchUpsertDevicesRequest{})
			wantCode(t, err, codes.InvalidArgument)
		})
		t.Run("pages walk every match once, in id order", func(t *testing.T) {
			req := &registryv1.ListDevicesRequest{PageSize: 300, LabelSelector: "site=s1", Enabled: registryv1.EnabledFilter_ENABLED_FILTER_DISABLED}
			var ids []string
			for {
				page, err := e.client.ListDevices(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				if page.GetTotalSize() != n/4 {
					t.Fatalf("total_size = %d, want %d", page.GetTotalSize(), n/4)
				}
				for _, d := range page.GetDevices() {
					ids = append(ids, d.GetId())
				}
				if page.GetNextPageToken() == "" {
					break
				}
				req.PageToken = page.GetNextPageToken()
			}
			if len(ids) != n/4 || !slices.IsSorted(ids) || ids[0] != "dev-00001" {
				t.Fatalf("walked %d ids (sorted %v), first %q", len(ids), slices.IsSorted(ids), ids[0])
			}
		})
		t.Run("a token of another query is INVALID_ARGUMENT on page_token", func(t *testing.T) {
			page, err := e.client.ListDevices(ctx, &registryv1.ListDevicesRequest{PageSize: 10})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.client.ListDevices(ctx, &registryv1.ListDevicesRequest{PageSize: 10, Group: "fleet", PageToken: page.GetNextPageToken()})
			st := wantCode(t, err, codes.InvalidArgument)
			if got := badRequestFields(t, st); !slices.Equal(got, []string{"page_token"}) {
				t.Errorf("fields = %q", got)
			}
		})
		t.Run("a group lists its members", func(t *testing.T) {
			page, err := e.client.ListGroupMembers(ctx, &registryv1.ListGroupMembersRequest{GroupId: "fleet", PageSize: 5})
			if err != nil || len(page.GetDevices()) != 5 || page.GetTotalSize() != n {
				t.Fatalf("ListGroupMembers = %d devices, total %d, %v", len(page.GetDevices()), page.GetTotalSize(), err)
			}
			g, err := e.client.GetGroup(ctx, &registryv1.GetGroupRequest{Id: "fleet"})
			if err != nil || g.GetGroup().GetMemberCount() != n {
				t.Fatalf("GetGroup = %v, %v", g, err)
			}
		})
	})
}

// recvChanges reads responses until it has n changes, and returns them.
func recvChanges(t *testing.T, stream registryv1.DeviceRegistry_WatchChangesClient, n int) []*registryv1.Change {
	t.Helper()
	var out []*registryv1.Change
	for len(out) < n {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv after %d changes: %v", len(out), err)
		}
		out = append(out, resp.GetChanges()...)
	}
	return out
}

func TestWatchChanges(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		ctx, cancel := context.WithCancel(admin(t))
		defer cancel()
		mustCreateGroup(t, e, "g")
		mustCreateDevice(t, e, &registryv1.Device{Id: "d1"})

		t.Run("the first response comes at once, with the current sequence", func(t *testing.T) {
			stream, err := e.client.WatchChanges(ctx, &registryv1.WatchChangesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil || len(resp.GetChanges()) != 0 || resp.GetSequence() != 2 {
				t.Fatalf("first response = %v, %v; want no changes at sequence 2", resp, err)
			}
			t.Run("and later changes follow live", func(t *testing.T) {
				mustCreateDevice(t, e, &registryv1.Device{Id: "d2", Groups: []string{"g"}})
				got := recvChanges(t, stream, 1)
				c := got[0]
				if c.GetSequence() != 3 || c.GetKind() != registryv1.ChangeKind_CHANGE_KIND_DEVICE_CREATED || c.GetId() != "d2" ||
					c.GetVersion() != 1 || c.GetDevice().GetGroups()[0] != "g" {
					t.Errorf("change = %v", c)
				}
			})
		})
		t.Run("a resumed stream replays from the sequence", func(t *testing.T) {
			stream, err := e.client.WatchChanges(ctx, &registryv1.WatchChangesRequest{ResumeAfter: 1})
			if err != nil {
				t.Fatal(err)
			}
			got := recvChanges(t, stream, 2)
			if got[0].GetSequence() != 2 || got[0].GetId() != "d1" || got[1].GetSequence() != 3 {
				t.Errorf("replayed %v", got)
			}
		})
		t.Run("kinds filter the changes and the sequence still advances", func(t *testing.T) {
			stream, err := e.client.WatchChanges(ctx, &registryv1.WatchChangesRequest{
				ResumeAfter: 1, Kinds: []registryv1.ChangeKind{registryv1.ChangeKind_CHANGE_KIND_GROUP_UPDATED},
			})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil || len(resp.GetChanges()) != 0 || resp.GetSequence() != 3 {
				t.Fatalf("first response = %v, %v; want no changes at sequence 3", resp, err)
			}
			mustCreateDevice(t, e, &registryv1.Device{Id: "d3"})
			if _, err := e.client.UpdateGroup(ctx, &registryv1.UpdateGroupRequest{Group: &registryv1.Group{Id: "g", DisplayName: "G"}, UpdateMask: mask("display_name")}); err != nil {
				t.Fatal(err)
			}
			got := recvChanges(t, stream, 1)
			if len(got) != 1 || got[0].GetKind() != registryv1.ChangeKind_CHANGE_KIND_GROUP_UPDATED || got[0].GetGroup().GetDisplayName() != "G" {
				t.Errorf("filtered changes = %v", got)
			}
		})
		t.Run("an unspecified kind is INVALID_ARGUMENT", func(t *testing.T) {
			stream, err := e.client.WatchChanges(ctx, &registryv1.WatchChangesRequest{Kinds: []registryv1.ChangeKind{0}})
			if err == nil {
				_, err = stream.Recv()
			}
			st := wantCode(t, err, codes.InvalidArgument)
			if got := badRequestFields(t, st); !slices.Equal(got, []string{"kinds[0]"}) {
				t.Errorf("fields = %q", got)
			}
		})
		t.Run("writes by another replica on the same store are seen by polling", func(t *testing.T) {
			stream, err := e.client.WatchChanges(ctx, &registryv1.WatchChangesRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
			other := start(t, e.store) // a second server on the same store
			if _, err := other.client.DeleteDevice(ctx, &registryv1.DeleteDeviceRequest{Id: "d1"}); err != nil {
				t.Fatal(err)
			}
			got := recvChanges(t, stream, 1)
			if got[0].GetKind() != registryv1.ChangeKind_CHANGE_KIND_DEVICE_DELETED || got[0].GetSnapshot() != nil {
				t.Errorf("change = %v", got[0])
			}
		})
	})
}
