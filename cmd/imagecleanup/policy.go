package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/imagecleanup/image-cleanup-operator/api/v1alpha1"
	"github.com/imagecleanup/image-cleanup-operator/internal/policyschema"
)

// maxPolicyBytes bounds a policy file: a policy is a few KiB, and
// -f /dev/zero must not eat the machine.
const maxPolicyBytes = 1 << 20

// invalidPolicyError is a policy the API server would refuse: every reason,
// each with its field path, one per line as kubectl prints them.
type invalidPolicyError struct {
	file, name string
	reasons    []string
}

func (e *invalidPolicyError) Error() string {
	what := "the policy"
	if e.name != "" {
		what = fmt.Sprintf("ImageCleanupPolicy %q", e.name)
	}
	return fmt.Sprintf("%s: %s is invalid:\n* %s", e.file, what, strings.Join(e.reasons, "\n* "))
}

// loadPolicy reads a policy file as kubectl apply -f takes it, and admits it
// as the API server does: strict field validation (an unknown field is an
// error, named by its path), then the CRD's defaults, schema and CEL rules.
// The file is read as validate reads it (several documents, v1 Lists, other
// kinds skipped), and must hold exactly one policy: plan and apply sweep one.
func loadPolicy(ctx context.Context, file string, stdin io.Reader) (*v1alpha1.ImageCleanupPolicy, error) {
	data, err := readBounded(ctx, file, stdin)
	if err != nil {
		return nil, err
	}
	docs, err := documents(data)
	if err != nil {
		return nil, &invalidPolicyError{file: file, reasons: []string{oneLine(err)}}
	}
	placed := unwrapLists(file, docs)
	if len(placed) == 1 {
		return admit(placed[0].where, placed[0].data) // whatever it is: admit says what is wrong with it
	}
	var policies []placedDocument
	for _, d := range placed {
		if isPolicyDocument(d.data) {
			policies = append(policies, d)
		}
	}
	if len(policies) != 1 {
		return nil, &invalidPolicyError{file: file, reasons: []string{fmt.Sprintf(
			"the file holds %s; plan and apply take one (validate checks them all)", count(len(policies), "ImageCleanupPolicy", "ImageCleanupPolicies"))}}
	}
	return admit(policies[0].where, policies[0].data)
}

// admit admits one YAML or JSON document, named where in messages.
func admit(where string, data []byte) (*v1alpha1.ImageCleanupPolicy, error) {
	invalid := func(name string, reasons ...string) error {
		return &invalidPolicyError{file: where, name: name, reasons: reasons}
	}
	var obj map[string]any
	if err := yaml.UnmarshalStrict(data, &obj); err != nil {
		// The YAML library speaks of the JSON it converts to; a person wrote YAML.
		msg := strings.TrimPrefix(oneLine(err), "error converting YAML to JSON: ")
		return nil, invalid("", strings.TrimPrefix(msg, "yaml: "))
	}
	name := ""
	if md, ok := obj["metadata"].(map[string]any); ok {
		name, _ = md["name"].(string)
	}
	if obj["apiVersion"] != v1alpha1.GroupVersion.String() || obj["kind"] != "ImageCleanupPolicy" {
		return nil, invalid(name, fmt.Sprintf("apiVersion and kind: want %s and ImageCleanupPolicy, got %s and %s",
			v1alpha1.GroupVersion, given(obj, "apiVersion"), given(obj, "kind")))
	}
	var reasons []string
	unknown, err := policyschema.UnknownFields(obj)
	if err != nil {
		return nil, err
	}
	for _, path := range unknown {
		reasons = append(reasons, fmt.Sprintf("unknown field %q", path))
	}
	if len(reasons) > 0 {
		return nil, invalid(name, reasons...)
	}
	admitted, errs := policyschema.Admit(obj)
	if len(errs) > 0 {
		for _, e := range errs {
			reasons = append(reasons, e.Error())
		}
		return nil, invalid(name, reasons...)
	}
	return admitted, nil
}

// readBounded reads at most maxPolicyBytes of the file (or stdin for "-"),
// and gives up when ctx ends (a signal): an endless or never-closing input
// neither fills memory nor hangs.
func readBounded(ctx context.Context, file string, stdin io.Reader) ([]byte, error) {
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		in := stdin
		if file != "-" {
			f, err := os.Open(file)
			if err != nil {
				done <- result{err: err}
				return
			}
			defer f.Close()
			in = f
		}
		data, err := io.ReadAll(io.LimitReader(in, maxPolicyBytes+1))
		if err == nil && len(data) > maxPolicyBytes {
			err = fmt.Errorf("%s: larger than %d bytes: a policy is a few KiB", file, maxPolicyBytes)
		}
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-ctx.Done():
		return nil, ctx.Err() // the reading goroutine ends with the process
	}
}

// policyFiles expands the -f arguments of validate: files as they are,
// folders to their .yaml, .yml and .json files (not recursively), "-" as
// stdin.
func policyFiles(args []string) ([]string, error) {
	var files []string
	for _, arg := range args {
		info, err := os.Stat(arg)
		switch {
		case arg == "-":
			files = append(files, arg)
		case err != nil:
			return nil, err
		case info.IsDir():
			entries, err := os.ReadDir(arg)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				if ext := filepath.Ext(e.Name()); !e.IsDir() && slices.Contains([]string{".yaml", ".yml", ".json"}, ext) {
					files = append(files, filepath.Join(arg, e.Name()))
				}
			}
		default:
			files = append(files, arg)
		}
	}
	if len(files) == 0 {
		return nil, errors.New("no policy file in " + strings.Join(args, ", "))
	}
	return files, nil
}

func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// given shows a top-level field as the document has it, or says it has none.
func given(obj map[string]any, field string) string {
	if v, ok := obj[field]; ok && v != nil {
		return fmt.Sprintf("%q", fmt.Sprint(v))
	}
	return "no " + field
}
