package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// A datasets save_to_disk folder of one Dataset: state.json names its Arrow
// files in order ("_data_files"), which load_from_disk concatenates. relupo
// reads the folder as that one dataset, so a fraction of it counts rows
// across its files, as the alignment handbook's mixer does.

// Files returns the files a data source reads: path itself, or for a
// datasets save_to_disk folder its Arrow files in order (see Open).
func Files(path string) ([]string, error) {
	st, err := os.Stat(path)
	if err != nil || !st.IsDir() {
		return []string{path}, nil // Open reports a missing file
	}
	return savedDatasetFiles(path)
}

// savedDatasetFiles returns the Arrow files of the save_to_disk folder dir
// in state.json's order; a folder without state.json is an error that
// lists the data files in it (folderError).
func savedDatasetFiles(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, folderError(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	var state struct {
		DataFiles []struct {
			Filename string `json:"filename"`
		} `json:"_data_files"`
	}
	if err := json.Unmarshal(b, &state); err != nil {
		return nil, fmt.Errorf("data: %s: %w", filepath.Join(dir, "state.json"), err)
	}
	if len(state.DataFiles) == 0 {
		return nil, fmt.Errorf("data: %s names no data files (_data_files)", filepath.Join(dir, "state.json"))
	}
	var files []string
	for _, f := range state.DataFiles {
		if f.Filename == "" || f.Filename != filepath.Base(f.Filename) || f.Filename == ".." || f.Filename == "." {
			return nil, fmt.Errorf("data: %s: data file %q is not a plain file name inside the folder", filepath.Join(dir, "state.json"), f.Filename)
		}
		files = append(files, filepath.Join(dir, f.Filename))
	}
	return files, nil
}

// chainSource reads the files of a saved dataset one after another.
type chainSource struct {
	files []string
	r     *Reader // the current file's
	pos   int     // index of the next file to open
	opts  Options
}

func (c *chainSource) next() (record, string, error) {
	for {
		if c.r != nil {
			rec, src, err := c.r.src.next()
			if err != io.EOF {
				return rec, src, err
			}
			c.r.Close()
			c.r = nil
		}
		if c.pos >= len(c.files) {
			return nil, "", io.EOF
		}
		r, err := Open(c.files[c.pos], c.opts)
		if err != nil {
			return nil, "", err
		}
		c.r, c.pos = r, c.pos+1
	}
}

func (c *chainSource) Close() error {
	if c.r != nil {
		return c.r.Close()
	}
	return nil
}
