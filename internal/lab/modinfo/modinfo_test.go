package modinfo

import (
	"slices"
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

// TestResolveCPU: the guest loads what udev loads for the CPU's features
// by resolving the CPU's modalias, as it reads in
// /sys/devices/system/cpu/modalias, against the modules' cpu: aliases
// (these two are aesni-intel's and ghash-clmulni-intel's, the same on 6.1,
// 6.12 and 7.3).
func TestResolveCPU(t *testing.T) {
	x := &Index{Modules: map[string]*Info{
		"aesni_intel":         {Name: "aesni_intel", Aliases: []string{"cpu:type:x86,ven*fam*mod*:feature:*0099*", "crypto-aes"}},
		"ghash_clmulni_intel": {Name: "ghash_clmulni_intel", Aliases: []string{"cpu:type:x86,ven*fam*mod*:feature:*0081*"}},
		"gcm":                 {Name: "gcm", Aliases: []string{"crypto-gcm(aes)"}},
	}}
	for _, tt := range []struct {
		modalias string
		want     []string
	}{
		{"cpu:type:x86,ven0000fam0006mod0055:feature:,0000,0001,0081,0099,00E5", []string{"aesni_intel", "ghash_clmulni_intel"}},
		{"cpu:type:x86,ven0000fam0006mod0055:feature:,0000,0081", []string{"ghash_clmulni_intel"}},
		{"cpu:type:x86,ven0000fam0006mod0055:feature:,0000,0098,0100", nil},
	} {
		if got := x.Resolve(tt.modalias); !slices.Equal(got, tt.want) {
			t.Errorf("Resolve(%q) = %v, want %v", tt.modalias, got, tt.want)
		}
	}
}
