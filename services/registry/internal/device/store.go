package device

import "context"

// Store is the registry's storage. Implementations: memstore (embedded,
// for `sensorcast run`) and postgres; both must pass storetest.Run, which
// is the executable form of this contract.
//
// Rules common to every method:
//
//   - Every method takes a context; a cancelled context may abort the call
//     with ctx.Err() (wrapped), in which case nothing was written.
//   - Every mutation is atomic: it commits completely or not at all, and
//     appends exactly one Change per affected object to the change log in
//     the same transaction (see Changes for order).
//   - Values returned are copies the caller owns; values passed in are not
//     retained (the store copies what it keeps).
//   - The store sets CreatedAt, UpdatedAt (UTC, truncated to microseconds,
//     so every store round-trips them exactly) and Version. Version is 1
//     after creation and grows by exactly one per committed change to the
//     object.
//   - expectVersion arguments: 0 means unconditional; otherwise the
//     object's current version must equal it, else ErrConflict and nothing
//     is written.
//   - Input is normalized (Device.Normalize) and then validated
//     (ValidateDevice, ValidateGroup, ValidateRule); invalid input returns
//     a *ValidationError wrapping ErrInvalid and nothing is written.
//   - Errors are wrapped sentinels of this package: test with errors.Is.
//     A missing object is ErrNotFound, also for deletes and updates.
//   - Lists are ordered by id, compared bytewise (PostgreSQL: COLLATE "C").
//     PageSize 0 means DefaultPageSize, above MaxPageSize means
//     MaxPageSize, negative is ErrInvalid. Pages are keyset pages ("ids
//     after the last one returned"), so paging while others write never
//     repeats or skips an object that exists during the whole walk (objects
//     created or deleted during it may or may not appear). NextPageToken is
//     "" on the last page. A token is opaque (see EncodePageToken) and only
//     valid for the query that produced it: another query's token, or a
//     malformed one, is ErrInvalid on field "page_token". TotalSize is the
//     number of objects matching the query's filters (all pages) at the time
//     of the call.
type Store interface {
	// CreateDevice stores a new device with Version 1 and returns it as
	// stored. ErrAlreadyExists if the id is taken. Every group in d.Groups
	// must exist, else MissingGroupsError (ErrFailedPrecondition, field
	// "groups"). d.SecretHash may be set (HashSecret). Change: DeviceCreated.
	CreateDevice(ctx context.Context, d Device) (Device, error)

	// GetDevice returns the device, or ErrNotFound.
	GetDevice(ctx context.Context, id string) (Device, error)

	// UpdateDevice is an atomic read-modify-write: under the row's lock it
	// reads the current device (ErrNotFound), checks expectVersion
	// (ErrConflict), calls mutate exactly once with a copy of it, then
	// normalizes, validates and stores the result with Version+1 and a new
	// UpdatedAt, and returns it. mutate may change every caller field,
	// SecretHash included; changes to CreatedAt, UpdatedAt and Version are
	// ignored, and changing ID is ErrInvalid on field "id". If mutate
	// returns an error, nothing is written and that error is returned
	// unchanged. mutate must not call the store. Every update bumps the
	// version, even one that changes nothing. New groups must exist
	// (MissingGroupsError). Change: DeviceUpdated.
	UpdateDevice(ctx context.Context, id string, mutate func(*Device) error, expectVersion int64) (Device, error)

	// DeleteDevice removes the device. ErrNotFound, ErrConflict.
	// Change: DeviceDeleted, with the version the device had.
	DeleteDevice(ctx context.Context, id string, expectVersion int64) error

	// ListDevices returns one page of the devices matching every filter of
	// q (see DeviceQuery), ordered by id.
	ListDevices(ctx context.Context, q DeviceQuery) (DevicePage, error)

	// UpsertDevices creates or replaces many devices in one transaction:
	// all are written or none. Each input is normalized and validated
	// first; any invalid device, duplicate id in the batch, or missing
	// group fails the whole batch with a ValidationError whose fields are
	// prefixed "devices[i]." (ErrInvalid, or ErrFailedPrecondition for
	// missing groups). More than MaxUpsertBatch devices is ErrInvalid on
	// field "devices". An existing device gets every caller field from the
	// input, keeps its CreatedAt, keeps its SecretHash when the input's is
	// nil, and gets Version+1; no version check is made. It returns how
	// many devices were created and how many updated. Changes: one
	// DeviceCreated or DeviceUpdated per device, in input order.
	UpsertDevices(ctx context.Context, devices []Device) (created, updated int, err error)

	// SetDeviceSecret replaces the device's SecretHash (nil removes it)
	// unconditionally, like UpdateDevice with a mutate that sets only the
	// hash. ErrNotFound; ErrInvalid (field "secret_hash") if hash is not
	// HashSecret's format. Change: DeviceUpdated.
	SetDeviceSecret(ctx context.Context, id string, hash []byte) (Device, error)

	// CreateGroup stores a new group with Version 1 and returns it (with
	// MemberCount 0). ErrAlreadyExists. Change: GroupCreated.
	CreateGroup(ctx context.Context, g Group) (Group, error)

	// GetGroup returns the group with its current MemberCount, or
	// ErrNotFound.
	GetGroup(ctx context.Context, id string) (Group, error)

	// UpdateGroup is UpdateDevice's read-modify-write for a group:
	// ErrNotFound, ErrConflict, mutate's own error, ErrInvalid on a changed
	// ID or an invalid result. MemberCount, CreatedAt, UpdatedAt and
	// Version changes by mutate are ignored. Change: GroupUpdated.
	UpdateGroup(ctx context.Context, id string, mutate func(*Group) error, expectVersion int64) (Group, error)

	// DeleteGroup removes a group. ErrNotFound. If the group has members and
	// force is false: GroupHasMembersError (ErrFailedPrecondition) and
	// nothing is written. With force, the group is first removed from every
	// member (each member gets Version+1 and a DeviceUpdated change, in id
	// order), then the group is deleted (GroupDeleted, the last change of
	// the transaction). Alert rules that target the group are kept.
	DeleteGroup(ctx context.Context, id string, force bool) error

	// ListGroups returns one page of all groups, ordered by id, each with
	// its MemberCount.
	ListGroups(ctx context.Context, q GroupQuery) (GroupPage, error)

	// ListGroupMembers returns one page of the devices in group q.GroupID,
	// ordered by id. ErrNotFound if the group does not exist (whereas
	// ListDevices with a Group filter returns an empty page).
	ListGroupMembers(ctx context.Context, q MembersQuery) (DevicePage, error)

	// CreateRule stores a new alert rule with Version 1 and returns it.
	// r.ID must be set (the server fills an empty one with NewRuleID).
	// ErrAlreadyExists. The target need not exist. Change: RuleCreated.
	CreateRule(ctx context.Context, r AlertRule) (AlertRule, error)

	// GetRule returns the rule, or ErrNotFound.
	GetRule(ctx context.Context, id string) (AlertRule, error)

	// UpdateRule is UpdateDevice's read-modify-write for a rule:
	// ErrNotFound, ErrConflict, mutate's own error, ErrInvalid on a changed
	// ID or an invalid result. Change: RuleUpdated.
	UpdateRule(ctx context.Context, id string, mutate func(*AlertRule) error, expectVersion int64) (AlertRule, error)

	// DeleteRule removes a rule. ErrNotFound, ErrConflict.
	// Change: RuleDeleted.
	DeleteRule(ctx context.Context, id string, expectVersion int64) error

	// ListRules returns one page of the rules matching q, ordered by id.
	ListRules(ctx context.Context, q RuleQuery) (RulePage, error)

	// Changes returns the changes with Seq > afterSeq in Seq order, at most
	// limit of them (limit 0 means DefaultChangesLimit; above
	// MaxChangesLimit means MaxChangesLimit; negative limit or afterSeq is
	// ErrInvalid). Seqs are store-wide, strictly increasing and gap-free in
	// commit order: once a reader has seen Seq n, no change with Seq ≤ n
	// can appear later, so Watch resumes from the last Seq it delivered.
	// Within one transaction changes take consecutive Seqs in the order the
	// method documents. An empty result means the reader is up to date
	// (also when afterSeq is beyond LatestSeq). ErrChangesExpired if the
	// store has dropped changes after afterSeq (it may keep a bounded
	// history; the oldest are dropped first).
	Changes(ctx context.Context, afterSeq int64, limit int) ([]Change, error)

	// LatestSeq returns the Seq of the last committed change, 0 if none.
	LatestSeq(ctx context.Context) (int64, error)
}

// Page sizes and limits of the Store's list methods.
const (
	DefaultPageSize     = 100
	MaxPageSize         = 1000
	DefaultChangesLimit = 1000
	MaxChangesLimit     = 10_000
)

// DeviceQuery filters ListDevices. Every set filter must hold.
type DeviceQuery struct {
	// Group, if set, keeps members of that group (a group that does not
	// exist yields an empty page). Must be a valid id.
	Group string
	// Selector keeps devices whose labels it matches (zero: all).
	Selector Selector
	// Enabled, if set, keeps devices whose Enabled equals *Enabled.
	Enabled *bool
	// NamePrefix keeps devices whose Name starts with it (bytewise, case
	// sensitive). At most MaxNameLen characters.
	NamePrefix string

	PageSize  int
	PageToken string
}

// DevicePage is one page of devices.
type DevicePage struct {
	Devices       []Device
	NextPageToken string
	TotalSize     int
}

// GroupQuery pages through ListGroups.
type GroupQuery struct {
	PageSize  int
	PageToken string
}

// GroupPage is one page of groups.
type GroupPage struct {
	Groups        []Group
	NextPageToken string
	TotalSize     int
}

// MembersQuery pages through ListGroupMembers.
type MembersQuery struct {
	GroupID   string
	PageSize  int
	PageToken string
}

// RuleQuery filters ListRules. Every set filter must hold.
type RuleQuery struct {
	// TargetKind, if set, keeps rules whose Target.Kind equals it.
	TargetKind TargetKind
	// TargetID, if set, keeps rules whose Target.ID equals it (with
	// TargetKind unset, of either kind).
	TargetID string

	PageSize  int
	PageToken string
}

// RulePage is one page of rules.
type RulePage struct {
	Rules         []AlertRule
	NextPageToken string
	TotalSize     int
}
