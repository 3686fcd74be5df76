package logstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"
)

// fsyncStore fsyncs a store file, counting and timing it.
func (l *Log) fsyncStore(f File) error {
	t0 := time.Now()
	err := f.Sync()
	l.stats.fsyncs.Add(1)
	if l.opts.ObserveFsync != nil {
		l.opts.ObserveFsync(time.Since(t0))
	}
	return err
}

// waitDurableLocked is group commit (SyncAlways): it returns once every
// offset below target is fsynced. The first waiter to find no fsync running
// becomes the syncer for everything written so far and runs the fsync
// without mu, so later appenders keep writing meanwhile; everyone else waits
// on cond and is released by the fsync that covers its batch.
func (l *Log) waitDurableLocked(target int64) error {
	for l.synced < target {
		if l.failed != nil {
			return l.failed
		}
		if l.syncing {
			l.cond.Wait()
			continue
		}
		if err := l.syncActiveUnlocked(); err != nil {
			return err
		}
	}
	return nil
}

// syncActiveUnlocked fsyncs the active store with mu released, then
// publishes what the fsync covered. mu is held on entry and on return.
func (l *Log) syncActiveUnlocked() error {
	l.syncing = true
	a, off, pos, seq := l.active, l.next, l.activePos, l.writeSeq
	syncRP := l.rp.syncDue(time.Now())
	l.mu.Unlock()
	err := l.fsyncStore(a.storeFile)
	if err == nil && syncRP {
		// The checkpoint as the last fsync left it; nothing writes it
		// while syncing is set.
		if err = l.rp.f.Sync(); err != nil {
			err = fmt.Errorf("recovery point: %w", err)
		}
	}
	l.mu.Lock()
	l.syncing = false
	defer l.cond.Broadcast()
	if err != nil {
		return l.failLocked(fmt.Errorf("syncing %s: %w", a.name, err))
	}
	if syncRP {
		l.rp.dirty, l.rp.lastSync = false, time.Now()
	}
	l.syncedSeq = max(l.syncedSeq, seq)
	if off > l.synced {
		l.synced = off
		if l.opts.Sync.Mode == SyncAlways {
			l.publishLocked(off, pos)
		}
	}
	return l.advanceRecoveryPointLocked(off)
}

// advanceRecoveryPointLocked records that every offset below off is
// fsynced. It costs one small write to the page cache; the checkpoint's own
// fsync is batched (recoveryPoint).
func (l *Log) advanceRecoveryPointLocked(off int64) error {
	if off <= l.rp.off || l.opts.staticRecoveryPoint {
		return nil
	}
	if err := l.rp.write(off, false); err != nil {
		return l.failLocked(fmt.Errorf("writing recovery point: %w", err))
	}
	return nil
}

// flushLocked waits for a running fsync and, under SyncAlways, syncs and
// publishes what is written but not yet synced, so that the active segment
// can change (roll, truncate, close) with no appender left waiting.
func (l *Log) flushLocked() error {
	for l.syncing {
		l.cond.Wait()
	}
	if l.failed != nil {
		return l.failed
	}
	if l.opts.Sync.Mode == SyncAlways && l.synced < l.next {
		if err := l.fsyncStore(l.active.storeFile); err != nil {
			return l.failLocked(fmt.Errorf("syncing %s: %w", l.active.name, err))
		}
		l.synced = l.next
		l.syncedSeq = l.writeSeq
		l.publishLocked(l.next, l.activePos)
		l.cond.Broadcast()
		return l.advanceRecoveryPointLocked(l.next)
	}
	return nil
}

// runIntervalSync is the SyncInterval goroutine; Close stops it.
func (l *Log) runIntervalSync(d time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.mu.Lock()
			if !l.closing && l.failed == nil && !l.syncing && l.syncedSeq < l.writeSeq {
				// A failure is sticky: failLocked logged it, Healthy and the
				// next write report it.
				if err := l.syncActiveUnlocked(); err != nil {
					l.lg.Debug("interval sync failed", zap.Error(err))
				}
			}
			l.mu.Unlock()
		}
	}
}

// Sync fsyncs everything written (stores and indexes of every segment not
// yet synced) and advances the recovery point to the log end.
func (l *Log) Sync() error {
	w := l.lockWriter()
	defer w.unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	return l.syncAllLocked(false)
}

// syncAllLocked makes the whole log durable and writes the recovery point;
// closing also trims the active index's preallocation.
func (l *Log) syncAllLocked(closing bool) error {
	if err := l.flushLocked(); err != nil {
		return err
	}
	a := l.active
	if closing {
		if err := a.indexFile.Truncate((l.next - a.base) * indexEntrySize); err != nil {
			return l.failLocked(fmt.Errorf("trimming %s: %w", indexName(a.base), err))
		}
	}
	if err := l.fsyncStore(a.storeFile); err != nil {
		return l.failLocked(fmt.Errorf("syncing %s: %w", a.name, err))
	}
	if err := a.indexFile.Sync(); err != nil {
		return l.failLocked(fmt.Errorf("syncing %s: %w", indexName(a.base), err))
	}
	for len(l.unsynced) > 0 {
		base := l.unsynced[0]
		if err := errors.Join(syncFile(l.fs, filepath.Join(l.dir, storeName(base))),
			syncFile(l.fs, filepath.Join(l.dir, indexName(base)))); err != nil {
			return l.failLocked(fmt.Errorf("syncing segment %d: %w", base, err))
		}
		l.unsynced = l.unsynced[1:]
	}
	l.synced, l.syncedSeq = l.next, l.writeSeq
	if l.rp.off != l.next || l.rp.dirty {
		if err := l.writeRecoveryPointLocked(l.next); err != nil {
			return l.failLocked(fmt.Errorf("writing recovery point: %w", err))
		}
	}
	return nil
}

// syncFile fsyncs a file by name.
func syncFile(fsys FS, name string) error {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
