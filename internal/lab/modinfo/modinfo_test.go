package modinfo

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	section := []byte("alias=crypto-gcm(aes)\x00alias=gcm(aes)\x00depends=crypto_simd,cryptd\x00" +
		"retpoline=Y\x00intree=Y\x00name=aesni_intel\x00vermagic=6.1.0 SMP mod_unload\x00\x00")
	got := Parse(section)
	want := &Info{
		Name:    "aesni_intel",
		Depends: []string{"crypto_simd", "cryptd"},
		Aliases: []string{"crypto-gcm(aes)", "gcm(aes)"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
}

func TestParseNoDepends(t *testing.T) {
	// A module with no dependencies still has an empty "depends=" entry.
	got := Parse([]byte("depends=\x00name=tls\x00"))
	if got.Name != "tls" || len(got.Depends) != 0 {
		t.Errorf("Parse = %+v, want name tls and no dependencies", got)
	}
}

func TestNameFromPath(t *testing.T) {
	for path, want := range map[string]string{
		"kernel/net/tls/tls.ko":                         "tls",
		"kernel/arch/x86/crypto/aesni-intel.ko.xz":      "aesni_intel",
		"kernel/arch/x86/crypto/ghash-clmulni-intel.ko": "ghash_clmulni_intel",
		"kernel/crypto/chacha20poly1305.ko.zst":         "chacha20poly1305",
		"9pnet_virtio.ko":                               "9pnet_virtio",
	} {
		if got := NameFromPath(path); got != want {
			t.Errorf("NameFromPath(%q) = %q, want %q", path, got, want)
		}
	}
}
