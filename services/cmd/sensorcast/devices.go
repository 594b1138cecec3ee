package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
)

// deviceCommands are the verbs of `sensorcast devices`.
var deviceCommands = []cliSubcommand{
	{"create", "ID", "Register a device (enabled unless --disabled)", devicesCreate},
	{"get", "ID", "Show a device", devicesGet},
	{"list", "", "List devices, filtered by group, labels, state or name", devicesList},
	{"update", "ID", "Change the fields given as flags (lists and maps are replaced whole)", devicesUpdate},
	{"delete", "ID", "Delete a device", devicesDelete},
	{"import", "--csv FILE", "Create or replace devices from a CSV file, in batches", devicesImport},
	{"set-secret", "ID", "Set the secret a device authenticates with, read from stdin", devicesSetSecret},
}

func runDevices(ctx context.Context, args []string, cio cliIO) error {
	return dispatchCLI(ctx, "devices", deviceCommands, args, cio)
}

func devicesCreate(ctx context.Context, cmd *cliCommand, args []string) error {
	var (
		name, typ  string
		groups     stringsFlag
		labels     = mapFlag{}
		attributes = mapFlag{}
		disabled   bool
	)
	cmd.fs.StringVar(&name, "name", "", "display name")
	cmd.fs.StringVar(&typ, "type", "", "kind of hardware (thermostat, esp32-env-v2, ...)")
	cmd.fs.Var(&groups, "group", "a `group` the device is in; repeat for several (each must exist)")
	cmd.fs.Var(labels, "label", "a label `key=value`; repeat for several")
	cmd.fs.Var(attributes, "attr", "an attribute `key=value` (free-form metadata); repeat for several")
	cmd.fs.BoolVar(&disabled, "disabled", false, "create the device disabled: its readings are dropped until it is enabled")
	pos, err := cmd.parse(args, 1)
	if err != nil {
		return err
	}
	client, callCtx, done, err := cmd.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.CreateDevice(callCtx, &registryv1.CreateDeviceRequest{Device: &registryv1.Device{
		Id:          pos[0],
		DisplayName: name,
		Type:        typ,
		Groups:      groups,
		Labels:      labels,
		Attributes:  attributes,
		Enabled:     !disabled,
	}})
	if err != nil {
		return cmd.failed(err)
	}
	return cmd.print(resp.GetDevice(), func(w io.Writer) { printDevice(w, resp.GetDevice()) })
}

func devicesGet(ctx context.Context, cmd *cliCommand, args []string) error {
	pos, err := cmd.parse(args, 1)
	if err != nil {
		return err
	}
	client, callCtx, done, err := cmd.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.GetDevice(callCtx, &registryv1.GetDeviceRequest{Id: pos[0]})
	if err != nil {
		return cmd.failed(err)
	}
	return cmd.print(resp.GetDevice(), func(w io.Writer) { printDevice(w, resp.GetDevice()) })
}

func devicesList(ctx context.Context, cmd *cliCommand, args []string) error {
	var (
		req               registryv1.ListDevicesRequest
		enabled, disabled bool
		limit             int
	)
	cmd.fs.StringVar(&req.Group, "group", "", "only members of this `group`")
	cmd.fs.StringVar(&req.LabelSelector, "selector", "", "only devices whose labels match, e.g. 'site=a,tier!=test' (also key, !key, key in (a,b), key notin (a,b))")
	cmd.fs.BoolVar(&enabled, "enabled", false, "only enabled devices")
	cmd.fs.BoolVar(&disabled, "disabled", false, "only disabled devices")
	cmd.fs.StringVar(&req.NamePrefix, "name-prefix", "", "only devices whose name starts with this (case-sensitive)")
	cmd.fs.IntVar(&limit, "limit", 100, "the most `N` devices to show (0: all)")
	if _, err := cmd.parse(args, 0); err != nil {
		return err
	}
	switch {
	case enabled && disabled:
		return cmd.usageErrorf("--enabled and --disabled exclude each other")
	case enabled:
		req.Enabled = registryv1.EnabledFilter_ENABLED_FILTER_ENABLED
	case disabled:
		req.Enabled = registryv1.EnabledFilter_ENABLED_FILTER_DISABLED
	}
	if limit < 0 {
		return cmd.usageErrorf("--limit must be 0 (all) or more, got %d", limit)
	}
	client, closeConn, err := cmd.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	devices, total, err := listPages(ctx, cmd, limit, func(ctx context.Context, size int32, token string) ([]*registryv1.Device, string, int64, error) {
		req.PageSize, req.PageToken = size, token
		resp, err := client.ListDevices(ctx, &req)
		return resp.GetDevices(), resp.GetNextPageToken(), resp.GetTotalSize(), err
	})
	if err != nil {
		return err
	}
	return cmd.print(&registryv1.ListDevicesResponse{Devices: devices, TotalSize: total}, func(w io.Writer) {
		printDeviceTable(w, devices, total, "devices")
	})
}

func devicesUpdate(ctx context.Context, cmd *cliCommand, args []string) error {
	var (
		d               registryv1.Device
		groups          stringsFlag
		labels          = mapFlag{}
		attributes      = mapFlag{}
		enable, disable bool
		expectedVersion int64
	)
	cmd.fs.StringVar(&d.DisplayName, "name", "", "new display name")
	cmd.fs.StringVar(&d.Type, "type", "", "new kind of hardware")
	cmd.fs.Var(&groups, "group", "a `group`; repeat for several; replaces all the device's groups (--group '' removes them all)")
	cmd.fs.Var(labels, "label", "a label `key=value`; repeat for several; replaces all the device's labels (--label '' removes them all)")
	cmd.fs.Var(attributes, "attr", "an attribute `key=value`; repeat for several; replaces all the device's attributes (--attr '' removes them all)")
	cmd.fs.BoolVar(&enable, "enable", false, "enable the device")
	cmd.fs.BoolVar(&disable, "disable", false, "disable the device: its readings are dropped and its secret stops verifying")
	cmd.fs.Int64Var(&expectedVersion, "if-version", 0, "update only if the device still has this `version` (0: regardless)")
	pos, err := cmd.parse(args, 1)
	if err != nil {
		return err
	}
	// The mask names exactly the fields given as flags.
	fieldOf := map[string]string{"name": "display_name", "type": "type", "group": "groups", "label": "labels", "attr": "attributes", "enable": "enabled", "disable": "enabled"}
	var paths []string
	cmd.fs.Visit(func(f *flag.Flag) {
		if p, ok := fieldOf[f.Name]; ok && !slices.Contains(paths, p) {
			paths = append(paths, p)
		}
	})
	switch {
	case enable && disable:
		return cmd.usageErrorf("--enable and --disable exclude each other")
	case len(paths) == 0:
		return cmd.usageErrorf("nothing to update: give at least one of --name, --type, --group, --label, --attr, --enable, --disable")
	}
	d.Id, d.Groups, d.Labels, d.Attributes, d.Enabled = pos[0], groups, labels, attributes, enable
	client, callCtx, done, err := cmd.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.UpdateDevice(callCtx, &registryv1.UpdateDeviceRequest{
		Device:     &d,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
		Version:    expectedVersion,
	})
	if err != nil {
		return cmd.failed(err)
	}
	return cmd.print(resp.GetDevice(), func(w io.Writer) { printDevice(w, resp.GetDevice()) })
}

func devicesDelete(ctx context.Context, cmd *cliCommand, args []string) error {
	pos, err := cmd.parse(args, 1)
	if err != nil {
		return err
	}
	client, callCtx, done, err := cmd.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.DeleteDevice(callCtx, &registryv1.DeleteDeviceRequest{Id: pos[0]})
	if err != nil {
		return cmd.failed(err)
	}
	return cmd.print(resp, func(w io.Writer) { fmt.Fprintf(w, "deleted device %s\n", pos[0]) })
}

// generatedSecretBytes is the entropy of a --generate'd device secret
// (256 bits; 43 characters in base64url).
const generatedSecretBytes = 32

func devicesSetSecret(ctx context.Context, cmd *cliCommand, args []string) error {
	var generate, remove bool
	cmd.fs.BoolVar(&generate, "generate", false, "generate a random secret and print it once (instead of reading stdin)")
	cmd.fs.BoolVar(&remove, "remove", false, "remove the device's secret: it can no longer authenticate with one")
	pos, err := cmd.parse(args, 1)
	if err != nil {
		return err
	}
	if generate && remove {
		return cmd.usageErrorf("--generate and --remove exclude each other")
	}
	// The secret never comes from a flag: flags end up in shell history
	// and in every process listing.
	var secret string
	switch {
	case generate:
		b := make([]byte, generatedSecretBytes)
		_, _ = rand.Read(b) // never fails (crypto/rand)
		secret = base64.RawURLEncoding.EncodeToString(b)
	case !remove:
		if secret, err = readLine(cmd.stdin); err != nil {
			return fmt.Errorf("%s: read the secret from stdin: %w", cmd.name, err)
		}
		if secret == "" {
			return cmd.usageErrorf("no secret on stdin: pipe one in, or use --generate (or --remove to remove the secret)")
		}
	}
	client, callCtx, done, err := cmd.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.SetDeviceSecret(callCtx, &registryv1.SetDeviceSecretRequest{DeviceId: pos[0], Secret: secret})
	if err != nil {
		return cmd.failed(err)
	}
	if generate {
		// Printed once: only its hash is stored.
		fmt.Fprintln(cmd.stdout, secret)
		fmt.Fprintf(cmd.stderr, "sensorcast: the secret of device %s is printed above, once; store it now (version %d)\n", pos[0], resp.GetVersion())
		return nil
	}
	return cmd.print(resp, func(w io.Writer) {
		if resp.GetHasSecret() {
			fmt.Fprintf(w, "device %s has a new secret (version %d)\n", pos[0], resp.GetVersion())
		} else {
			fmt.Fprintf(w, "device %s has no secret (version %d)\n", pos[0], resp.GetVersion())
		}
	})
}

// listPages pages through a list call until limit items (0: all) are read,
// returning them and the total the last page reported.
func listPages[T any](ctx context.Context, cmd *cliCommand, limit int,
	page func(ctx context.Context, size int32, token string) (items []T, next string, total int64, err error)) ([]T, int64, error) {
	var (
		all   []T
		token string
		total int64
	)
	for {
		callCtx, cancel := cmd.call(ctx)
		items, next, t, err := page(callCtx, pageSize(limit, len(all)), token)
		cancel()
		if err != nil {
			return nil, 0, cmd.failed(err)
		}
		all, token, total = append(all, items...), next, t
		if token == "" || (limit > 0 && len(all) >= limit) {
			return all, total, nil
		}
	}
}

// printDevice writes one device as "FIELD: value" lines.
func printDevice(w io.Writer, d *registryv1.Device) {
	fmt.Fprintf(w, "ID:\t%s\n", d.GetId())
	fmt.Fprintf(w, "NAME:\t%s\n", orDash(d.GetDisplayName()))
	fmt.Fprintf(w, "TYPE:\t%s\n", orDash(d.GetType()))
	fmt.Fprintf(w, "ENABLED:\t%t\n", d.GetEnabled())
	fmt.Fprintf(w, "GROUPS:\t%s\n", orDash(strings.Join(d.GetGroups(), ",")))
	fmt.Fprintf(w, "LABELS:\t%s\n", orDash(joinMap(d.GetLabels(), ",")))
	fmt.Fprintf(w, "ATTRIBUTES:\t%s\n", orDash(joinMap(d.GetAttributes(), ",")))
	fmt.Fprintf(w, "HAS SECRET:\t%t\n", d.GetHasSecret())
	fmt.Fprintf(w, "CREATED:\t%s\n", formatTime(d.GetCreateTime()))
	fmt.Fprintf(w, "UPDATED:\t%s\n", formatTime(d.GetUpdateTime()))
	fmt.Fprintf(w, "VERSION:\t%d\n", d.GetVersion())
}

// printDeviceTable writes devices one a row, then "N of TOTAL <noun>".
func printDeviceTable(w io.Writer, devices []*registryv1.Device, total int64, noun string) {
	fmt.Fprintln(w, "ID\tNAME\tENABLED\tGROUPS\tLABELS")
	for _, d := range devices {
		fmt.Fprintf(w, "%s\t%s\t%t\t%s\t%s\n", d.GetId(), orDash(d.GetDisplayName()), d.GetEnabled(),
			orDash(strings.Join(d.GetGroups(), ",")), orDash(joinMap(d.GetLabels(), ",")))
	}
	fmt.Fprintf(w, "%d of %d %s\n", len(devices), total, noun)
}
