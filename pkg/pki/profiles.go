package pki

import (
	"fmt"
	"time"

	"github.com/cloudflare/cfssl/config"
)

// Profile names a certificate profile.
type Profile string

// The profiles the CA issues under.
const (
	// ProfileServer: serverAuth with SANs. For listeners only.
	ProfileServer Profile = "server"
	// ProfileClient: clientAuth, no SANs. For callers only.
	ProfileClient Profile = "client"
	// ProfilePeer: serverAuth and clientAuth with SANs. For services that
	// both listen and dial (brokers, replicators, admin).
	ProfilePeer Profile = "peer"
)

const (
	// MaxLeafValidity is every leaf profile's maximum validity.
	MaxLeafValidity = 365 * 24 * time.Hour
	// DefaultCAValidity is the CA certificate's validity.
	DefaultCAValidity = 10 * 365 * 24 * time.Hour
	// backdate is subtracted from "now" for a leaf's NotBefore so that small
	// clock skews between nodes do not reject a fresh certificate.
	backdate = 5 * time.Minute
)

// Profiles lists every profile, in a stable order.
func Profiles() []Profile { return []Profile{ProfileServer, ProfileClient, ProfilePeer} }

// MaxValidity returns the profile's maximum validity.
func (p Profile) MaxValidity() time.Duration { return MaxLeafValidity }

// hasSANs reports whether the profile carries subject alternative names.
func (p Profile) hasSANs() bool { return p == ProfileServer || p == ProfilePeer }

func (p Profile) validate() error {
	switch p {
	case ProfileServer, ProfileClient, ProfilePeer:
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnknownProfile, string(p))
}

// signingPolicy is the cfssl policy holding the three profiles. Each profile
// copies only the subject, public key and (for SAN profiles) DNS names and IPs
// from a CSR: no extensions, so a CSR cannot ask for CA powers.
func signingPolicy() *config.Signing {
	profile := func(usages []string, sans bool) *config.SigningProfile {
		return &config.SigningProfile{
			Usage:        usages,
			Expiry:       MaxLeafValidity,
			ExpiryString: MaxLeafValidity.String(),
			CSRWhitelist: &config.CSRWhitelist{
				Subject:            true,
				PublicKeyAlgorithm: true,
				PublicKey:          true,
				SignatureAlgorithm: true,
				DNSNames:           sans,
				IPAddresses:        sans,
			},
		}
	}
	return &config.Signing{
		Profiles: map[string]*config.SigningProfile{
			string(ProfileServer): profile([]string{"signing", "digital signature", "key encipherment", "server auth"}, true),
			string(ProfileClient): profile([]string{"signing", "digital signature", "key encipherment", "client auth"}, false),
			string(ProfilePeer):   profile([]string{"signing", "digital signature", "key encipherment", "server auth", "client auth"}, true),
		},
		// The default profile is never used on purpose: every Sign names its
		// profile. It is the most restricted one.
		Default: profile([]string{"signing", "digital signature", "client auth"}, false),
	}
}
