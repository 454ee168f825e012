package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
)

func validateCommand() *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE|DIR [-f ...]",
		Short: "Check policies offline, with the API server's verdicts (no runtime, no cluster)",
		Long: `validate admits every ImageCleanupPolicy in the files (folders: their .yaml, .yml and
.json files) as the API server would: strict fields, the CRD's defaults, schema and CEL
rules, and the patterns. The items of a v1 List are checked as documents of their own;
documents of other kinds are skipped, so a folder of manifests can be given as it is. Exit 0 when every policy is valid, 2 when one is not.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return usageError(fmt.Errorf("-f FILE|DIR is required"))
			}
			paths, err := policyFiles(files)
			if err != nil {
				return withCode(exitError, err) // a file that is not there is no misuse of the command
			}
			return validateFiles(cmd, paths)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, `a policy file or a folder of them ("-" reads stdin); repeatable`)
	return cmd
}

// validateFiles prints one line per valid policy on stdout and every reason
// of every invalid one on stderr.
func validateFiles(cmd *cobra.Command, paths []string) error {
	invalid, policies := 0, 0
	for _, path := range paths {
		data, err := readBounded(cmd.Context(), path, cmd.InOrStdin())
		if err != nil {
			return withCode(exitError, err)
		}
		docs, err := documents(data)
		if err != nil {
			invalid++
			fmt.Fprintf(cmd.ErrOrStderr(), "error: %s: %s\n", path, oneLine(err))
			continue
		}
		for _, d := range unwrapLists(path, docs) {
			where, doc := d.where, d.data
			if !isPolicyDocument(doc) {
				continue
			}
			policies++
			p, err := admit(where, doc)
			if err != nil {
				invalid++
				fmt.Fprintf(cmd.ErrOrStderr(), "error: %s\n", err)
				continue
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ImageCleanupPolicy %q is valid\n", where, p.Name)
		}
	}
	if invalid > 0 {
		return withCode(exitInvalid, fmt.Errorf("%s invalid", count(invalid, "policy", "policies")))
	}
	if policies == 0 {
		// A CI step that validates nothing must not pass.
		return withCode(exitError, fmt.Errorf("no ImageCleanupPolicy in %s", strings.Join(paths, ", ")))
	}
	return nil
}

// documents splits a YAML stream into its non-empty documents.
func documents(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out [][]byte
	for {
		doc, err := r.Read()
		switch {
		case errors.Is(err, io.EOF):
			return out, nil
		case err != nil:
			return nil, fmt.Errorf("reading YAML document %d: %w", len(out)+1, err)
		}
		if trimmed := bytes.TrimSpace(doc); len(trimmed) > 0 && string(trimmed) != "---" {
			out = append(out, doc)
		}
	}
}

// placedDocument is a document and where it is, for messages.
type placedDocument struct {
	where string
	data  []byte
}

// unwrapLists names the documents of a file, and replaces a v1 List (what
// kubectl get -o yaml prints) with its items, as kubectl apply takes them.
func unwrapLists(path string, docs [][]byte) []placedDocument {
	var out []placedDocument
	for i, doc := range docs {
		where := path
		if len(docs) > 1 {
			where = fmt.Sprintf("%s (document %d)", path, i+1)
		}
		var list struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Items      []json.RawMessage `json:"items"`
		}
		if err := yaml.Unmarshal(doc, &list); err != nil || list.APIVersion != "v1" || list.Kind != "List" {
			out = append(out, placedDocument{where, doc})
			continue
		}
		for j, item := range list.Items {
			out = append(out, placedDocument{fmt.Sprintf("%s (item %d)", where, j+1), item})
		}
	}
	return out
}

// isPolicyDocument: a document that says it is an ImageCleanupPolicy, or
// one of this API group (a typo in the kind is then reported, not skipped).
func isPolicyDocument(doc []byte) bool {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return true // let admit say what is wrong with it
	}
	group, _, _ := bytes.Cut([]byte(head.APIVersion), []byte("/"))
	return head.Kind == "ImageCleanupPolicy" || string(group) == v1alpha1.GroupVersion.Group
}
