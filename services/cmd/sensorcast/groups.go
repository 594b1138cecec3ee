package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	registryv1 "github.com/sensorcast/sensorcast/proto/sensorcast/registry/v1"
)

// groupCommands are the verbs of `sensorcast groups`.
var groupCommands = []cliSubcommand{
	{"create", "ID", "Create an empty group (add devices with 'devices update --group' or an import)", groupsCreate},
	{"get", "ID", "Show a group", groupsGet},
	{"list", "", "List groups", groupsList},
	{"delete", "ID", "Delete a group (--force: one that has members)", groupsDelete},
	{"members", "ID", "List a group's devices", groupsMembers},
}

func runGroups(ctx context.Context, args []string, cio cliIO) error {
	return dispatchCLI(ctx, "groups", groupCommands, args, cio)
}

func groupsCreate(ctx context.Context, cmd *cliCommand, args []string) error {
	var (
		g      registryv1.Group
		labels = mapFlag{}
	)
	cmd.fs.StringVar(&g.DisplayName, "name", "", "display name")
	cmd.fs.StringVar(&g.Description, "description", "", "what the group is for")
	cmd.fs.Var(labels, "label", "a label `key=value`; repeat for several")
	pos, err := cmd.parse(args, 1)
	if err != nil {
		return err
	}
	g.Id, g.Labels = pos[0], labels
	client, callCtx, done, err := cmd.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.CreateGroup(callCtx, &registryv1.CreateGroupRequest{Group: &g})
	if err != nil {
		return cmd.failed(err)
	}
	return cmd.print(resp.GetGroup(), func(w io.Writer) { printGroup(w, resp.GetGroup()) })
}

func groupsGet(ctx context.Context, cmd *cliCommand, args []string) error {
	pos, err := cmd.parse(args, 1)
	if err != nil {
		return err
	}
	client, callCtx, done, err := cmd.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.GetGroup(callCtx, &registryv1.GetGroupRequest{Id: pos[0]})
	if err != nil {
		return cmd.failed(err)
	}
	return cmd.print(resp.GetGroup(), func(w io.Writer) { printGroup(w, resp.GetGroup()) })
}

func groupsList(ctx context.Context, cmd *cliCommand, args []string) error {
	var limit int
	cmd.fs.IntVar(&limit, "limit", 100, "the most `N` groups to show (0: all)")
	if _, err := cmd.parse(args, 0); err != nil {
		return err
	}
	if limit < 0 {
		return cmd.usageErrorf("--limit must be 0 (all) or more, got %d", limit)
	}
	client, closeConn, err := cmd.connect()
	if err != nil {
		return err
	}
	defer closeConn()
	groups, total, err := listPages(ctx, cmd, limit, func(ctx context.Context, size int32, token string) ([]*registryv1.Group, string, int64, error) {
		resp, err := client.ListGroups(ctx, &registryv1.ListGroupsRequest{PageSize: size, PageToken: token})
		return resp.GetGroups(), resp.GetNextPageToken(), resp.GetTotalSize(), err
	})
	if err != nil {
		return err
	}
	return cmd.print(&registryv1.ListGroupsResponse{Groups: groups, TotalSize: total}, func(w io.Writer) {
		fmt.Fprintln(w, "ID\tNAME\tMEMBERS\tLABELS")
		for _, g := range groups {
			fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", g.GetId(), orDash(g.GetDisplayName()), g.GetMemberCount(), orDash(joinMap(g.GetLabels(), ",")))
		}
		fmt.Fprintf(w, "%d of %d groups\n", len(groups), total)
	})
}

func groupsDelete(ctx context.Context, cmd *cliCommand, args []string) error {
	var force bool
	cmd.fs.BoolVar(&force, "force", false, "delete a group that has members, removing it from each of them first")
	pos, err := cmd.parse(args, 1)
	if err != nil {
		return err
	}
	client, callCtx, done, err := cmd.dial(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := client.DeleteGroup(callCtx, &registryv1.DeleteGroupRequest{Id: pos[0], Force: force})
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition && !force {
			// The server's advice names the API field; name the flag.
			return fmt.Errorf("%w\n  (--force removes the group from its members, then deletes it)", cmd.failed(err))
		}
		return cmd.failed(err)
	}
	return cmd.print(resp, func(w io.Writer) { fmt.Fprintf(w, "deleted group %s\n", pos[0]) })
}

func groupsMembers(ctx context.Context, cmd *cliCommand, args []string) error {
	var limit int
	cmd.fs.IntVar(&limit, "limit", 100, "the most `N` devices to show (0: all)")
	pos, err := cmd.parse(args, 1)
	if err != nil {
		return err
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
		resp, err := client.ListGroupMembers(ctx, &registryv1.ListGroupMembersRequest{GroupId: pos[0], PageSize: size, PageToken: token})
		return resp.GetDevices(), resp.GetNextPageToken(), resp.GetTotalSize(), err
	})
	if err != nil {
		return err
	}
	return cmd.print(&registryv1.ListGroupMembersResponse{Devices: devices, TotalSize: total}, func(w io.Writer) {
		printDeviceTable(w, devices, total, "members of "+pos[0])
	})
}

// printGroup writes one group as "FIELD: value" lines.
func printGroup(w io.Writer, g *registryv1.Group) {
	fmt.Fprintf(w, "ID:\t%s\n", g.GetId())
	fmt.Fprintf(w, "NAME:\t%s\n", orDash(g.GetDisplayName()))
	// A description may span lines: indent the ones after the first.
	fmt.Fprintf(w, "DESCRIPTION:\t%s\n", strings.ReplaceAll(orDash(g.GetDescription()), "\n", "\n\t"))
	fmt.Fprintf(w, "LABELS:\t%s\n", orDash(joinMap(g.GetLabels(), ",")))
	fmt.Fprintf(w, "MEMBERS:\t%d\n", g.GetMemberCount())
	fmt.Fprintf(w, "CREATED:\t%s\n", formatTime(g.GetCreateTime()))
	fmt.Fprintf(w, "UPDATED:\t%s\n", formatTime(g.GetUpdateTime()))
	fmt.Fprintf(w, "VERSION:\t%d\n", g.GetVersion())
}
