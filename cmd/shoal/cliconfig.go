//go:build !shoal_slim

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	shoalv1 "github.com/shoal-mesh/shoal/proto/shoal/v1"
)

// configEnv names the CLI's config file instead of the default
// ~/.config/shoal/config.yaml ($XDG_CONFIG_HOME/shoal/config.yaml).
const configEnv = "SHOAL_CONFIG"

// cliConfig is the CLI's config file, written by `shoal login` (mode 0600:
// it may hold a token). Every command that calls the management API takes
// its defaults from it; flags and $SHOAL_TOKEN override them.
type cliConfig struct {
	// API is the management API address (--api).
	API string `json:"api,omitempty"`
	// CABundle is the mesh root CA to verify the API with (--ca-bundle).
	CABundle string `json:"ca-bundle,omitempty"`
	// Token is a bearer token (--token).
	Token string `json:"token,omitempty"`
	// Cert and Key are a client certificate and its key (--cert, --key).
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
}

// configPath is $SHOAL_CONFIG, else config.yaml under the user's config
// directory.
func configPath() (string, error) {
	if p := os.Getenv(configEnv); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no config directory for the CLI's config file (set $%s): %w", configEnv, err)
	}
	return filepath.Join(dir, "shoal", "config.yaml"), nil
}

// loadCLIConfig reads the config file; a missing file is an empty config.
func loadCLIConfig() (cliConfig, string, error) {
	path, err := configPath()
	if err != nil {
		return cliConfig{}, "", nil // no home: nothing to read
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cliConfig{}, path, nil
	}
	if err != nil {
		return cliConfig{}, path, fmt.Errorf("config file %s: %w", path, err)
	}
	var c cliConfig
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return cliConfig{}, path, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, path, nil
}

// applyConfig fills the API flags the user did not give from the config
// file: --api, else $SHOAL_API, else the file's api; the file's
// credentials only when no credential was given (--token, $SHOAL_TOKEN,
// --cert) and --api, if given, names the API the file is for.
func (f *apiFlags) applyConfig() error {
	if f.configApplied {
		return nil
	}
	f.configApplied = true
	c, _, err := loadCLIConfig()
	if err != nil {
		return err
	}
	changed := func(name string) bool { return f.fs != nil && f.fs.Changed(name) }
	if !changed("api") {
		switch {
		case os.Getenv("SHOAL_API") != "":
			f.addr = os.Getenv("SHOAL_API")
		case c.API != "":
			f.addr = c.API
		}
	}
	if c.API != "" && f.addr != c.API {
		return nil // the file is about another API
	}
	if !changed("ca-bundle") && f.caBundle == "" {
		f.caBundle = c.CABundle
	}
	if changed("token") || changed("cert") || changed("key") || os.Getenv("SHOAL_TOKEN") != "" {
		return nil
	}
	f.token, f.cert, f.key = c.Token, c.Cert, c.Key
	return nil
}

// newLoginCmd is `shoal login`: check the credentials against the API and
// keep them in the config file.
func newLoginCmd() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "login --api ADDR [--ca-bundle F] [--token T | --cert F --key F]",
		Short: "check credentials for the management API and keep them in ~/.config/shoal/config.yaml (or $SHOAL_CONFIG)",
		Long: "login calls the management API with the credentials given and, when it answers, writes them to the\n" +
			"CLI's config file (mode 0600): every command that calls the API (routes, policies, services, instances,\n" +
			"status, top, tokens, check) then takes --api, --ca-bundle and the token or certificate from it.\n" +
			"Flags and $SHOAL_TOKEN still override it.",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.configApplied = true // login writes the file; it does not read it
			if !f.fs.Changed("api") {
				return usageErrorf("--api is required: the management API to log in to")
			}
			if f.token == "" {
				f.token = os.Getenv("SHOAL_TOKEN")
			}
			if err := f.check(); err != nil {
				return err
			}
			c := cliConfig{API: f.addr, Token: f.token}
			var err error
			for _, p := range []struct {
				dst *string
				src string
			}{{&c.CABundle, f.caBundle}, {&c.Cert, f.cert}, {&c.Key, f.key}} {
				if p.src != "" {
					if *p.dst, err = filepath.Abs(p.src); err != nil {
						return err
					}
				}
			}
			id, err := loginCheck(cmd.Context(), f)
			if err != nil {
				return err
			}
			path, err := writeCLIConfig(c)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s (control plane %s); wrote %s\n", f.addr, id, path)
			return nil
		},
	}
	f.register(cmd.Flags())
	return cmd
}

// loginCheck calls MeshService.Status, which every role may read.
func loginCheck(ctx context.Context, f apiFlags) (string, error) {
	conn, err := f.dial()
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	st, err := shoalv1.NewMeshServiceClient(conn).Status(ctx, &shoalv1.StatusRequest{})
	if err != nil {
		return "", f.apiError(err)
	}
	return st.GetControlPlaneId(), nil
}

// writeCLIConfig replaces the config file (0600, its directory 0700).
func writeCLIConfig(c cliConfig) (string, error) {
	path, err := configPath()
	if err != nil {
		return "", err
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return "", err
	}
	b = append([]byte("# written by shoal login; holds credentials: keep it private (mode 0600)\n"), b...)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("config file %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".config-*.yaml")
	if err != nil {
		return "", fmt.Errorf("config file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return "", fmt.Errorf("config file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("config file %s: %w", path, err)
	}
	return path, nil
}

// isLoopbackAddr reports whether host:port names loopback.
func isLoopbackAddr(addr string) bool {
	host := addr
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		host = strings.Trim(addr[:i], "[]")
	}
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}
