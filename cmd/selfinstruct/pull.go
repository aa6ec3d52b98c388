package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/selfinstruct/selfinstruct/llm/hub"
)

func init() { rootCmd.AddCommand(newPullCmd()) }

func newPullCmd() *cobra.Command {
	var cacheDir, endpoint string
	var force bool
	cmd := &cobra.Command{
		Use:   "pull " + hub.Scheme + "OWNER/REPO[@REVISION]/FILE.gguf",
		Short: "Download a GGUF model from the Hugging Face Hub into the local cache",
		Long: `Downloads one file of a Hugging Face repository into the cache
(--cache, else $` + hub.EnvCache + `, else the user cache directory plus "selfinstruct")
and prints its local path. A file already in the cache is not downloaded again
(--force does).

The file comes from {endpoint}/OWNER/REPO/resolve/REVISION/FILE (REVISION
defaults to main; the endpoint to $` + hub.EnvEndpoint + `, else ` + hub.DefaultEndpoint + `).
An interrupted download resumes where it stopped. The size and, for LFS
files, the sha256 the hub announces are checked before the file is put in
place; the computed sha256 is recorded beside it in FILE` + hub.SumSuffix + `.
Gated and private repositories need an access token in $` + hub.EnvToken + `.

--model of generate (with the local teacher) accepts the same references
and pulls them on first use.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := hub.ParseRef(args[0])
			if err != nil {
				return withCode(exitBadInput, err)
			}
			res, err := hub.Pull(cmd.Context(), ref, hub.Options{
				CacheDir: cacheDir,
				Endpoint: endpoint,
				Force:    force,
				Progress: cmd.ErrOrStderr(),
				Terminal: term.IsTerminal(int(os.Stderr.Fd())),
				Logger:   slog.Default(),
			})
			if err != nil {
				return withCode(pullExitCode(err, exitError), err)
			}
			if res.Cached {
				slog.Info("already in the cache", "model", ref.String(), "path", res.Path)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), res.Path)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&cacheDir, "cache", "", "cache directory (default $"+hub.EnvCache+", else the user cache directory)")
	f.StringVar(&endpoint, "endpoint", "", "hub base URL (default $"+hub.EnvEndpoint+", else "+hub.DefaultEndpoint+")")
	f.BoolVar(&force, "force", false, "download again even if the file is in the cache")
	return cmd
}
