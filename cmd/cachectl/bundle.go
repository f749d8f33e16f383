package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/cachectl/cachectl/planner"
	"github.com/cachectl/cachectl/providers/bundle"
	"github.com/cachectl/cachectl/providers/image"
	"github.com/cachectl/cachectl/providers/progress"
	"github.com/cachectl/cachectl/providers/source"
)

// BundleCmd writes and checks transfer bundles for air-gapped clusters.
type BundleCmd struct {
	Create BundleCreateCmd `cmd:"" default:"withargs" help:"Write a bundle of every image of the spec (the default: 'cachectl bundle -o FILE.tar')."`
	Verify BundleVerifyCmd `cmd:"" help:"Check a bundle's integrity (no spec needed)."`
}

// Help shows examples.
func (BundleCmd) Help() string {
	return `A bundle is one uncompressed tar (an OCI image layout) with every image the
spec needs, each blob once, for clusters without registry access. See
docs/bundles.md.

Examples:
  cachectl bundle -o images.tar                        # on a connected host
  cachectl bundle -o week2.tar -since images.tar       # only what images.tar lacks
  cachectl bundle verify images.tar                    # after the copy
  cachectl apply -source images.tar                    # on the air-gapped cluster`
}

// Help shows examples.
func (BundleCreateCmd) Help() string {
	return `Examples:
  cachectl bundle -o images.tar
  cachectl bundle create -o week2.tar --since images.tar
  cachectl bundle -o sif-only.tar --target 'cache.sif["determinedai/pytorch-ngc:0.38.1"]'`
}

// BundleCreateCmd writes a bundle.
type BundleCreateCmd struct {
	sourceFlags
	Output string   `short:"o" name:"output" required:"" placeholder:"FILE.tar" predictor:"file" help:"The bundle file to write (atomically: a temporary file renamed into place)."`
	Target []string `name:"target" sep:"none" placeholder:"ADDRESS" predictor:"address" help:"Only the image of this artifact address, e.g. 'cache.sif[\"alpine:3.20\"]', or every image of a cache, cache.sif (repeatable)."`
	Since  string   `name:"since" type:"existingfile" predictor:"file" placeholder:"OLD.tar" help:"Write an incremental bundle: leave out the blobs that the images of OLD.tar need."`
}

// Run writes the bundle.
func (c *BundleCreateCmd) Run(g *Globals, iox *IO) error {
	m, err := loadModel(g, iox)
	if err != nil {
		return err
	}
	reqs, names, err := planner.BundleRequests(m, c.Target)
	if err != nil {
		return err
	}
	var base *bundle.Bundle
	if c.Since != "" {
		if base, err = bundle.Open(c.Since); err != nil {
			return fmt.Errorf("-since: %w", err)
		}
		defer base.Close()
	}
	blobs, storeLock, err := useStore(g, iox, m)
	if err != nil {
		return err
	}
	defer storeLock.Release()
	sink := c.sink(g, iox)
	defer progress.Close(sink)
	src, err := newRegistrySource(g, blobs, m, sink)
	if err != nil {
		return err
	}
	resolved, err := src.ResolveAll(iox.Ctx, reqs)
	if err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	// Pull every distinct manifest into the local store (each blob once),
	// then write the bundle from the store.
	var images []bundle.Image
	pulls := map[string]string{} // manifest → a reference
	for _, r := range reqs {
		k := source.ResolveKey{Ref: r.Ref, Platform: image.PlatformString(r.Platform)}
		res := resolved[k]
		images = append(images, bundle.Image{Ref: r.Ref, Name: names[r.Ref], Platform: k.Platform, Digest: res.Digest, Manifest: res.Manifest})
		if _, ok := pulls[res.Manifest]; !ok {
			pulls[res.Manifest] = r.Ref
		}
	}
	var (
		eg   errgroup.Group
		mu   sync.Mutex
		errs []error
	)
	eg.SetLimit(4)
	for manifest, ref := range pulls {
		eg.Go(func() error {
			if _, err := src.Fetch(iox.Ctx, ref, manifest); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = eg.Wait()
	progress.Close(sink)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	res, err := bundle.Write(iox.Ctx, c.Output, images, src.Store, bundle.WriteOptions{Base: base, CachectlVersion: Version})
	if err != nil {
		return err
	}
	st := src.Stats()
	fmt.Fprintf(iox.Stdout, "Wrote %s: %d image(s), %d blob(s) (%s), file %s.\n",
		c.Output, res.Images, res.Blobs, planner.HumanBytes(res.BlobBytes), planner.HumanBytes(res.Size))
	if base != nil {
		fmt.Fprintf(iox.Stdout, "Incremental: extends %s (%s); left out %d blob(s) (%s) that it has.\n",
			filepath.Base(c.Since), base.ID, res.Skipped, planner.HumanBytes(res.SkippedBytes))
	}
	fmt.Fprintf(iox.Stdout, "Downloaded %s (%d blobs; %d already in the store).\nBundle ID: %s\n",
		planner.HumanBytes(st.BytesDownloaded), st.BlobsDownloaded, st.BlobsCached, res.ID)
	return nil
}

// BundleVerifyCmd checks a bundle.
type BundleVerifyCmd struct {
	File string `arg:"" name:"file" type:"existingfile" predictor:"file" help:"The bundle to check."`
}

// Help shows examples.
func (BundleVerifyCmd) Help() string {
	return `Checks every member against SHA256SUMS, that every image's manifest, config
and layers are there (or, in an incremental bundle, listed as left out), and
that the index is consistent. Needs no spec. Prints the bundle ID to compare
with the one printed where the bundle was made.

Example:
  cachectl bundle verify images.tar`
}

// Run verifies.
func (c *BundleVerifyCmd) Run(g *Globals, iox *IO) error {
	b, err := bundle.Open(c.File)
	if err != nil {
		return err
	}
	defer b.Close()
	rep, err := b.Verify(iox.Ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(iox.Stdout, "%s: OK: %d image(s), %d blob(s) (%s), every member matches SHA256SUMS.\n",
		c.File, rep.Images, rep.Blobs, planner.HumanBytes(rep.BlobBytes))
	if rep.Base != nil {
		fmt.Fprintf(iox.Stdout, "Incremental: extends %s (%s); %d blob(s) (%s) must come from it or from the blob store.\n",
			rep.Base.File, rep.Base.ID, rep.LeftOut, planner.HumanBytes(rep.LeftOutBytes))
	}
	fmt.Fprintf(iox.Stdout, "Bundle ID: %s\n", rep.ID)
	for _, img := range b.Images() {
		fmt.Fprintf(iox.Stdout, "  %s  %s  %s\n", img.Ref, img.Platform, img.Manifest)
	}
	return nil
}
