//! The schema: numbered SQL scripts applied in order at open, tracked with `PRAGMA user_version`. Append only;
//! each comment names the component whose `store.rs` owns the tables.

/// The numbered migrations; index + 1 is the version each brings the schema to. Append only.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: key/value metadata and the alert outbox (alert/outbox.rs).
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL,
        severity TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        first_at INTEGER NOT NULL,
        last_at INTEGER NOT NULL,
        count INTEGER NOT NULL,
        count_sent INTEGER NOT NULL DEFAULT 0
     );
     CREATE INDEX alerts_key ON alerts (key, first_at);
     CREATE INDEX alerts_unsent ON alerts (count_sent, count);
     CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        created_at INTEGER NOT NULL,
        severity TEXT NOT NULL,
        subject TEXT NOT NULL,
        body TEXT NOT NULL,
        keys TEXT NOT NULL
     );
     CREATE TABLE deliveries (
        message_id INTEGER NOT NULL REFERENCES messages(id),
        notifier TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at INTEGER NOT NULL,
        delivered_at INTEGER,
        last_error TEXT,
        PRIMARY KEY (message_id, notifier)
     );
     CREATE INDEX deliveries_due ON deliveries (delivered_at, next_at);",
    // 2: the local provider's processes (cloud/local.rs) and every scaling decision (scale/run.rs).
    "CREATE TABLE local_instances (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        token TEXT NOT NULL,
        pid INTEGER NOT NULL,
        start INTEGER NOT NULL,
        port INTEGER NOT NULL,
        launched_at INTEGER NOT NULL
     );
     CREATE TABLE scale_decisions (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        action TEXT NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        instance TEXT,
        reason TEXT NOT NULL,
        dry_run INTEGER NOT NULL,
        instances INTEGER NOT NULL,
        median REAL,
        predicted REAL,
        fleet TEXT NOT NULL,
        outcome TEXT NOT NULL
     );
     CREATE INDEX scale_decisions_at ON scale_decisions (at);",
    // 3: monitor state (tracker JSON per target), raw check results and hourly aggregates (monitor/service.rs).
    "CREATE TABLE monitor_state (target TEXT PRIMARY KEY, state TEXT NOT NULL, updated_at INTEGER NOT NULL);
     CREATE TABLE monitor_results (
        target TEXT NOT NULL,
        at INTEGER NOT NULL,
        up INTEGER NOT NULL,
        response_ms INTEGER NOT NULL,
        status INTEGER,
        reason TEXT NOT NULL
     );
     CREATE INDEX monitor_results_target_at ON monitor_results (target, at);
     CREATE INDEX monitor_results_at ON monitor_results (at);
     CREATE TABLE monitor_hourly (
        target TEXT NOT NULL,
        hour INTEGER NOT NULL,
        checks INTEGER NOT NULL,
        ups INTEGER NOT NULL,
        response_ms_sum INTEGER NOT NULL,
        response_ms_max INTEGER NOT NULL,
        PRIMARY KEY (target, hour)
     );",
    // 4: deploys, the deploy lock (one row at most) and the webhook deliveries seen (deploy/service.rs).
    "CREATE TABLE deploys (
        id INTEGER PRIMARY KEY,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        trigger TEXT NOT NULL,
        commit_sha TEXT,
        branch TEXT,
        hosts TEXT NOT NULL,
        state TEXT NOT NULL,
        summary TEXT,
        log TEXT
     );
     CREATE TABLE deploy_lock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        deploy_id INTEGER NOT NULL,
        holder TEXT NOT NULL,
        since INTEGER NOT NULL
     );
     CREATE TABLE webhook_deliveries (delivery TEXT PRIMARY KEY, at INTEGER NOT NULL);",
    // 5: the claim that identifies a message across cluster replicas (alert/store.rs, alert/claims.rs).
    "ALTER TABLE messages ADD COLUMN claim TEXT NOT NULL DEFAULT '';",
    // 6: phase timings of each check (microseconds) and the phase a failed check failed in; ad-hoc silences
    // (`tend silence`) and the down alerts held back by a maintenance window or a silence (monitor/store.rs).
    "ALTER TABLE monitor_results ADD COLUMN dns_us INTEGER;
     ALTER TABLE monitor_results ADD COLUMN connect_us INTEGER;
     ALTER TABLE monitor_results ADD COLUMN tls_us INTEGER;
     ALTER TABLE monitor_results ADD COLUMN ttfb_us INTEGER;
     ALTER TABLE monitor_results ADD COLUMN transfer_us INTEGER;
     ALTER TABLE monitor_results ADD COLUMN failed_phase TEXT;
     CREATE TABLE monitor_silences (
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        since INTEGER NOT NULL,
        until INTEGER NOT NULL,
        reason TEXT NOT NULL,
        by TEXT NOT NULL
     );
     CREATE INDEX monitor_silences_until ON monitor_silences (until);
     CREATE TABLE monitor_held (
        target TEXT PRIMARY KEY,
        since INTEGER NOT NULL,
        reason TEXT NOT NULL,
        held_at INTEGER NOT NULL
     );",
    // 7: releases: who started each deploy, rollbacks, and each host's result (deploy/store.rs).
    "ALTER TABLE deploys ADD COLUMN started_by TEXT;
     ALTER TABLE deploys ADD COLUMN rollback_of INTEGER;
     ALTER TABLE deploys ADD COLUMN rolled_back_by INTEGER;
     CREATE TABLE deploy_hosts (
        deploy_id INTEGER NOT NULL,
        position INTEGER NOT NULL,
        host TEXT NOT NULL,
        result TEXT NOT NULL,
        seconds REAL NOT NULL,
        detail TEXT NOT NULL,
        left_out INTEGER NOT NULL,
        PRIMARY KEY (deploy_id, position)
     );",
    // 8: the local provider's load readings, its history for the scaler's warm start (cloud/store.rs).
    "CREATE TABLE local_load (id TEXT NOT NULL, at INTEGER NOT NULL, load REAL NOT NULL);
     CREATE INDEX local_load_at ON local_load (at);",
];
