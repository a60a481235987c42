package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
)

// gossipKeyEnv is the environment variable a gossip key can be passed in,
// e.g. from a Kubernetes Secret: a key in argv is visible to every user of
// the host (ps, /proc/PID/cmdline).
const gossipKeyEnv = "SHOAL_GOSSIP_KEY"

// gossipKeyFlags are --gossip-key and --gossip-key-file, shared by every
// gossip member's command.
type gossipKeyFlags struct{ key, file string }

func (g *gossipKeyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.key, "gossip-key", "", "base64 32-byte gossip encryption key (AES-GCM), or several separated by commas (the first encrypts, all decrypt: for a member started in the middle of a rotation); prefer --gossip-key-file or $"+gossipKeyEnv+": a key on the command line is visible to every user of the host")
	fs.StringVar(&g.file, "gossip-key-file", "", "file holding the base64 gossip key(s) (e.g. a mounted Kubernetes Secret)")
}

// resolve returns the base64 key from the flag, the file or the
// environment (in that order of precedence; the flag and the file together
// are an error), or "" for no encryption.
func (g *gossipKeyFlags) resolve() (string, error) {
	switch {
	case g.key != "" && g.file != "":
		return "", errors.New("--gossip-key and --gossip-key-file: give one")
	case g.key != "":
		return g.key, nil
	case g.file != "":
		b, err := os.ReadFile(g.file)
		if err != nil {
			return "", fmt.Errorf("--gossip-key-file: %w", err)
		}
		k := strings.TrimSpace(string(b))
		if k == "" {
			return "", fmt.Errorf("--gossip-key-file %s is empty", g.file)
		}
		return k, nil
	}
	return strings.TrimSpace(os.Getenv(gossipKeyEnv)), nil
}
