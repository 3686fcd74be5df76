package partition

import "time"

// The leader lease (issue 12, item 3): a broker whose replicator died, or
// lost the Raft majority, is not told when the controller moves leadership
// away from it, and would accept produce for ever as a leader nobody
// follows. acks=ALL is safe without a lease (the high watermark needs the
// ISR's followers, which fetch from the new leader once they are told), but
// acks=LEADER and acks=NONE are not: what the old leader acknowledges after
// the move is truncated when it rejoins.
//
// So in cluster mode a leader accepts produce only while its leadership was
// confirmed within the lease (Options.LeaderLease): confirmed when this
// node's replicator applies a state naming this broker leader
// (ApplyPartitionState), and when the replicator's metadata, asked every
// quarter lease (isr.LeaseKeeper), names it leader in the current epoch. The
// replicator answers metadata only while it is in contact with the Raft
// leader (it heard from it within 2 s), so a confirmation says "the
// controller had not moved this leadership at most 2 s before". Past the
// lease, Produce is refused with LeaseExpiredError (Unavailable: clients
// refresh their metadata and retry) for every acks; reads, followers'
// fetches and acks=ALL produces already waiting go on. An answer that names
// another leader or a newer epoch (DenyLeadership) ends the lease at once.
// The next confirmation (the replicator back and caught up) lifts the
// refusal: no restart.
//
// Follower fetches do not renew the lease: a follower fetching in this
// epoch only shows that its replicator has not applied a newer one yet,
// and a follower cut off with this leader on the minority side of a
// partition would keep it alive for ever.
//
// The bound, with the lease L (default 3 s) and the controller's failure
// detection D (Serf's: probe, then a suspicion of at least 4 s, so D >= 5 s
// with the default LAN profile on 3 nodes):
//   - replicator crashed: produce stops at most L after its last
//     confirmation, before the controller can elect another leader when
//     L < D, so the two never both accept writes;
//   - replicator (or the whole node) cut off from the Raft majority: at
//     most 2 s + L after the cut, again before D when 2 s + L <= D;
//   - replicator current but unable to reach this broker while the
//     controller moves the leadership (its probe of the broker failed, say):
//     the replicator's next answer names the new leader and ends the lease,
//     so produce stops a renewal interval (L/4) after the move, plus the
//     replicator's lag applying the commit; when the broker cannot reach
//     its replicator either, at most L after the last confirmation. This
//     is the only case where the two may overlap. A broker that hung (and
//     so was reported down) and resumes has its first renewal due at once.

// ConfirmLeadership records that this node's replicator, asked at time at,
// named this broker the leader in leader epoch epoch. It reports whether
// the confirmation applied: false when this broker does not lead in that
// epoch (the state moved on meanwhile).
func (p *Partition) ConfirmLeadership(epoch int32, at time.Time) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state.Role != RoleLeader || p.state.LeaderEpoch != epoch {
		return false
	}
	p.rmu.Lock()
	defer p.rmu.Unlock()
	if at.After(p.confirmed) {
		p.confirmed = at
	}
	p.revoked = false
	return true
}

// DenyLeadership records that this node's replicator, current, no longer
// names this broker the leader in leader epoch epoch (another leader, or a
// newer epoch): produce is refused at once, without waiting for the lease
// to run out, until a confirmation or a new state. It reports whether it
// applied: false when this broker does not lead in that epoch (a newer
// state arrived meanwhile).
func (p *Partition) DenyLeadership(epoch int32) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.state.Role != RoleLeader || p.state.LeaderEpoch != epoch {
		return false
	}
	p.rmu.Lock()
	p.revoked = true
	p.rmu.Unlock()
	return true
}

// LeaseErr is nil when this broker may accept produce as the partition's
// leader (or has no lease, or does not lead), else a LeaseExpiredError.
func (p *Partition) LeaseErr() error {
	st := p.State()
	if st.Role != RoleLeader {
		return nil
	}
	return p.leaseErr(st.LeaderEpoch)
}

// leaseErr is LeaseErr for a leader in epoch.
func (p *Partition) leaseErr(epoch int32) error {
	if p.lease <= 0 {
		return nil
	}
	p.rmu.Lock()
	since, revoked := p.now().Sub(p.confirmed), p.revoked
	p.rmu.Unlock()
	if since <= p.lease && !revoked {
		return nil
	}
	return &LeaseExpiredError{Topic: p.topic, Partition: p.id, Epoch: epoch, Since: since, Lease: p.lease, Revoked: revoked}
}
