//! Moving a slot between primaries in steps, so a test can stand in the middle.

use super::{RedisCluster, RedisReply, SlotMigration, owner};

impl RedisCluster {
    /// Starts moving `slot` from its primary to another primary: `CLUSTER SETSLOT slot
    /// IMPORTING` on the target, then `MIGRATING` on the owner. From now on the owner answers
    /// `-ASK` for keys of the slot it no longer has.
    ///
    /// # Panics
    /// If a command is refused.
    pub fn begin_migration(&self, slot: u16) -> SlotMigration {
        let from = self.primary_of(slot);
        let Some(to) = self.primaries().into_iter().find(|&p| p != from) else {
            panic!("a cluster of one primary cannot migrate a slot");
        };
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let slot_arg = slot.to_string();
        let reply = self.command(
            to,
            &["CLUSTER", "SETSLOT", &slot_arg, "IMPORTING", &from_id],
        );
        assert!(reply.is_ok(), "SETSLOT IMPORTING on {to}: {reply:?}");
        let reply = self.command(
            from,
            &["CLUSTER", "SETSLOT", &slot_arg, "MIGRATING", &to_id],
        );
        assert!(reply.is_ok(), "SETSLOT MIGRATING on {from}: {reply:?}");
        SlotMigration {
            slot,
            from,
            to,
            to_id,
        }
    }

    /// Moves every key of the migrating slot to the target (`CLUSTER GETKEYSINSLOT` and
    /// `MIGRATE ... KEYS`, 100 keys at a time, at most 10,000 rounds). Returns how many keys
    /// moved.
    ///
    /// # Panics
    /// If `MIGRATE` fails.
    pub fn migrate_keys(&self, migration: &SlotMigration) -> usize {
        let slot_arg = migration.slot.to_string();
        let port = migration.to.port().to_string();
        let mut moved = 0;
        for _ in 0..10_000 {
            let keys = self.command(
                migration.from,
                &["CLUSTER", "GETKEYSINSLOT", &slot_arg, "100"],
            );
            let keys: Vec<String> = keys.items().iter().filter_map(RedisReply::text).collect();
            if keys.is_empty() {
                return moved;
            }
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys.iter().map(String::as_str));
            let reply = self.command(migration.from, &args);
            assert!(reply.is_ok(), "MIGRATE from {}: {reply:?}", migration.from);
            moved += keys.len();
        }
        panic!(
            "slot {} still had keys after 10,000 MIGRATE rounds",
            migration.slot
        )
    }

    /// Ends the migration: `CLUSTER SETSLOT slot NODE <target>` on the target, the old owner
    /// and every other primary, then waits (at most 30 s) until every live node sees the
    /// target as the slot's owner. From now on the old owner answers `-MOVED`.
    ///
    /// # Panics
    /// If a command is refused or the nodes do not agree in time.
    pub fn finish_migration(&self, migration: SlotMigration) {
        let slot_arg = migration.slot.to_string();
        let mut order = vec![migration.to, migration.from];
        order.extend(
            self.primaries()
                .into_iter()
                .filter(|p| *p != migration.to && *p != migration.from),
        );
        for node in order {
            let reply = self.command(
                node,
                &["CLUSTER", "SETSLOT", &slot_arg, "NODE", &migration.to_id],
            );
            assert!(reply.is_ok(), "SETSLOT NODE on {node}: {reply:?}");
        }
        let (slot, to) = (migration.slot, migration.to);
        self.wait_until("every node to see a migrated slot's new owner", |view| {
            owner(view, slot) == Some(to)
        });
    }
}
