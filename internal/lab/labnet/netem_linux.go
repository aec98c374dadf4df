package labnet

import (
	"fmt"
	"time"

	"github.com/vishvananda/netlink"
)

// Netem makes h's side of the link slow and lossy: what h sends waits
// delay, and lossPercent of its packets are dropped, by a netem qdisc at
// the root of h's interface (sch_netem, which the lab's guests load on
// demand). Call it on both hosts for a link that is slow both ways.
//
// It also makes TCP hand the interface one segment per packet (a GSO
// limit of one segment): netem drops whole packets, and a veth takes
// packets of up to 64 KiB, so without it one loss would take a burst of
// segments, not one.
func (h *Host) Netem(delay time.Duration, lossPercent float64) error {
	return h.Do(func() error {
		link, err := netlink.LinkByName(h.Name)
		if err != nil {
			return fmt.Errorf("labnet: %s: %w", h.Name, err)
		}
		if err := netlink.LinkSetGSOMaxSegs(link, 1); err != nil {
			return fmt.Errorf("labnet: one segment per packet on %s: %w", h.Name, err)
		}
		q := netlink.NewNetem(
			netlink.QdiscAttrs{LinkIndex: link.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
			netlink.NetemQdiscAttrs{Latency: uint32(delay.Microseconds()), Loss: float32(lossPercent)},
		)
		if err := netlink.QdiscReplace(q); err != nil {
			return fmt.Errorf("labnet: netem on %s (is sch_netem available?): %w", h.Name, err)
		}
		return nil
	})
}
