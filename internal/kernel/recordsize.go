package kernel

// FeatureTXMaxPayloadLen is TLS_TX_MAX_PAYLOAD_LEN: a cap on the plaintext
// of each record the kernel builds (upstream commit 82cb5be6ad64, "net/tls:
// support setting the maximum payload size", first released in Linux
// 6.19). Without it the kernel fills records to 16 KiB whatever the
// connection has sent so far.
var FeatureTXMaxPayloadLen = &Feature{Name: "TLS_TX_MAX_PAYLOAD_LEN", MinKernel: "6.19"}

// The bounds the kernel puts on TLS_TX_MAX_PAYLOAD_LEN: RFC 8449's
// smallest record size limit, 64, less the content type byte in TLS 1.3,
// and the largest plaintext of a record.
const (
	MinTXMaxPayloadLen12 = 64
	MinTXMaxPayloadLen13 = 63
	MaxTXMaxPayloadLen   = 16384
)

func init() { FeatureTXMaxPayloadLen.probe = probeTXMaxPayloadLen }
