//! Data-driven scheduler tests: a text fixture of nodes, jobs and
//! allocations goes in, the rendered plan comes out and is compared with a
//! snapshot. Refresh snapshots with `UPDATE_EXPECT=1 cargo test -p scheduler`.

use expect_test::{Expect, expect};
use scheduler::testing::{parse_fixture, run_fixture};

fn check(fixture: &str, expected: Expect) {
    let fixture = parse_fixture(fixture).expect("fixture parses");
    let (_, rendered) = run_fixture(&fixture, 7).expect("evaluation schedules");
    expected.assert_eq(&rendered);
}

#[test]
fn simple_placement() {
    check(
        r#"
node n1 cpu=4000 mem=8192
node n2 cpu=4000 mem=8192
job web
group api count=3 cpu=500 mem=256
"#,
        expect![[r#"
            eval complete queued: api=0
            place n1 web.api[0] (id-2) v0 cpu=500 mem=256 deployment=id-1
            place n1 web.api[2] (id-4) v0 cpu=500 mem=256 deployment=id-1
            place n2 web.api[1] (id-3) v0 cpu=500 mem=256 deployment=id-1
            deployment id-1 job=web v0 api:3/canary=0
        "#]],
    );
}

/// Node pool and driver health filter; affinities with weights (a liked
/// rack, a disliked class) re-rank what is left, the job's anti-affinity
/// still counting.
#[test]
fn pool_driver_health_and_weighted_affinities() {
    check(
        r#"
node n1 meta.rack=r1 class=big drivers=exec,docker
node n2 meta.rack=r2 drivers=exec,docker
node n3 meta.rack=r1 drivers=exec,docker
node n4 pool=gpu meta.rack=r1 drivers=exec,docker
node n5 meta.rack=r1 bad_drivers=docker
job web pool=default
group api count=4 cpu=500 mem=256 driver=docker
affinity ${meta.rack} = r1 weight=60
affinity ${node.class} = big weight=-40
"#,
        expect![[r#"
            eval complete queued: api=0
            place n1 web.api[1] (id-3) v0 cpu=500 mem=256 deployment=id-1
            place n2 web.api[3] (id-5) v0 cpu=500 mem=256 deployment=id-1
            place n3 web.api[0] (id-2) v0 cpu=500 mem=256 deployment=id-1
            place n3 web.api[2] (id-4) v0 cpu=500 mem=256 deployment=id-1
            deployment id-1 job=web v0 api:4/canary=0
        "#]],
    );
}

/// The operator's `spread` algorithm ranks the emptiest node first where
/// best fit (the default) fills the fullest one.
#[test]
fn spread_algorithm_prefers_the_emptiest_nodes() {
    let cluster = r#"
node n1 cpu=4000 mem=8192
node n2 cpu=4000 mem=8192
node n3 cpu=8000 mem=16384
job other
group g count=1 cpu=2000 mem=4096
alloc o1 other.g[0] node=n1 status=running
job web
group api count=3 cpu=500 mem=256
eval job=web
"#;
    check(
        &format!("config algorithm=spread\n{cluster}"),
        expect![[r#"
            eval complete queued: api=0
            place n2 web.api[1] (id-3) v0 cpu=500 mem=256 deployment=id-1
            place n3 web.api[0] (id-2) v0 cpu=500 mem=256 deployment=id-1
            place n3 web.api[2] (id-4) v0 cpu=500 mem=256 deployment=id-1
            deployment id-1 job=web v0 api:3/canary=0
        "#]],
    );
    check(
        &format!("config algorithm=binpack\n{cluster}"),
        expect![[r#"
            eval complete queued: api=0
            place n1 web.api[0] (id-2) v0 cpu=500 mem=256 deployment=id-1
            place n1 web.api[2] (id-4) v0 cpu=500 mem=256 deployment=id-1
            place n2 web.api[1] (id-3) v0 cpu=500 mem=256 deployment=id-1
            deployment id-1 job=web v0 api:3/canary=0
        "#]],
    );
}

/// `memory_max` is a limit, not a reservation: placements fit on `mem`
/// (Nomad's oversubscription semantics) and carry the limit along.
#[test]
fn memory_max_is_carried_but_not_reserved() {
    check(
        r#"
node n1 cpu=4000 mem=1024
job web
group api count=4 cpu=100 mem=300 mem_max=2048
"#,
        expect![[r#"
            eval complete queued: api=1
            place n1 web.api[0] (id-2) v0 cpu=100 mem=300 mem_max=2048 deployment=id-1
            place n1 web.api[1] (id-3) v0 cpu=100 mem=300 mem_max=2048 deployment=id-1
            place n1 web.api[2] (id-4) v0 cpu=100 mem=300 mem_max=2048 deployment=id-1
            deployment id-1 job=web v0 api:4/canary=0
            created id-5 blocked job=web trigger=queued-allocs classes=1ok/0no escaped=false
            failed api: evaluated=1 filtered=0 exhausted=1 coalesced=0
              exhausted memory: 1
        "#]],
    );
}

/// A count far beyond what the cluster holds (a job stored before the
/// count limit existed) places what fits and counts the rest as coalesced
/// failures, without making a request per missing allocation first: this
/// used to reserve 48 GB and abort the process.
#[test]
fn a_billion_allocations_place_what_fits_and_coalesce_the_rest() {
    check(
        r#"
node n1 cpu=4000 mem=1024
job web
group api count=1000000000 cpu=100 mem=300
"#,
        expect![[r#"
            eval complete queued: api=999999997
            place n1 web.api[0] (id-2) v0 cpu=100 mem=300 deployment=id-1
            place n1 web.api[1] (id-3) v0 cpu=100 mem=300 deployment=id-1
            place n1 web.api[2] (id-4) v0 cpu=100 mem=300 deployment=id-1
            deployment id-1 job=web v0 api:1000000000/canary=0
            created id-5 blocked job=web trigger=queued-allocs classes=1ok/0no escaped=false
            failed api: evaluated=1 filtered=0 exhausted=1 coalesced=999999996
              exhausted memory: 1
        "#]],
    );
}

#[test]
fn count_increase_and_decrease() {
    check(
        r#"
node n1
node n2
job web
group api count=4 cpu=500 mem=256
group db count=1 cpu=500 mem=256
alloc a0 web.api[0] node=n1
alloc a1 web.api[1] node=n2
alloc d0 web.db[0] node=n1
alloc d1 web.db[1] node=n2
alloc d2 web.db[2] node=n2
"#,
        expect![[r#"
            eval complete queued: api=0 db=0
            stop n2 web.db[1] (d1): alloc not needed since the group count was reduced
            stop n2 web.db[2] (d2): alloc not needed since the group count was reduced
            place n1 web.api[2] (id-2) v0 cpu=500 mem=256 deployment=id-1
            place n2 web.api[3] (id-3) v0 cpu=500 mem=256 deployment=id-1
            deployment id-1 job=web v0 api:4/canary=0,db:1/canary=0
        "#]],
    );
}

#[test]
fn node_down_replaces_lost_allocs() {
    check(
        r#"
node n1 status=down
node n2
node n3 drain=true
job web
group api count=3 cpu=500 mem=256
alloc a0 web.api[0] node=n1
alloc a1 web.api[1] node=n2
alloc a2 web.api[2] node=n3 migrate=true
eval trigger=node-update
"#,
        expect![[r#"
            eval complete queued: api=0
            stop n1 web.api[0] (a0): alloc lost since its node is down [lost]
            stop n3 web.api[2] (a2): alloc migrating off a draining node
            place n2 web.api[0] (id-1) v0 cpu=500 mem=256 prev=a0
            place n2 web.api[2] (id-2) v0 cpu=500 mem=256 prev=a2
        "#]],
    );
}

#[test]
fn force_reschedule_replaces_a_failed_alloc_past_its_attempts() {
    check(
        r#"
node n1
job work type=batch
group g count=2 cpu=100 mem=64 attempts=0
alloc a0 work.g[0] node=n1 status=failed force_reschedule=true
alloc a1 work.g[1] node=n1 status=failed
eval trigger=job-register
"#,
        expect![[r#"
            eval complete queued: g=0
            stop n1 work.g[0] (a0): alloc rescheduled after failure
            place n1 work.g[0] (id-1) v0 cpu=100 mem=64 prev=a0 reschedule#1 delay=0s
        "#]],
    );
}

#[test]
fn a_draining_node_keeps_what_the_drainer_has_not_marked() {
    check(
        r#"
node n1
node n2 drain=true
job web
group api count=3 cpu=500 mem=256
alloc a0 web.api[0] node=n2 migrate=true
alloc a1 web.api[1] node=n2
alloc a2 web.api[2] node=n2
eval trigger=node-drain
"#,
        expect![[r#"
            eval complete queued: api=0
            stop n2 web.api[0] (a0): alloc migrating off a draining node
            place n1 web.api[0] (id-1) v0 cpu=500 mem=256 prev=a0
        "#]],
    );
}

#[test]
fn failed_alloc_rescheduled_with_exponential_delay() {
    check(
        r#"
now 1000s
node n1
node n2
job web
group api count=2 cpu=500 mem=256 reschedule=exponential:30s:1h unlimited=true
alloc a0 web.api[0] node=n1 failed_at=900s reschedules=30s,60s
alloc a1 web.api[1] node=n2 failed_at=995s
eval trigger=alloc-failure
"#,
        expect![[r#"
            eval complete queued: api=0
            update n1 web.api[0] (a0) v0 cpu=500 mem=256 followup=id-1
            update n2 web.api[1] (a1) v0 cpu=500 mem=256 followup=id-1
            created id-1 pending job=web trigger=alloc-failure wait_until=+25s
        "#]],
    );
}

#[test]
fn delayed_reschedule_runs_when_due() {
    check(
        r#"
now 1100s
node n1
node n2
job web
group api count=1 cpu=500 mem=256 reschedule=exponential:30s:1h unlimited=true
alloc a0 web.api[0] node=n1 failed_at=995s followup=e1
eval trigger=alloc-failure
"#,
        expect![[r#"
            eval complete queued: api=0
            stop n1 web.api[0] (a0): alloc rescheduled after failure
            place n2 web.api[0] (id-1) v0 cpu=500 mem=256 prev=a0 reschedule#1 delay=30s
        "#]],
    );
}

#[test]
fn batch_reschedule_attempts_run_out() {
    check(
        r#"
node n1
job report type=batch
group crunch count=2 cpu=500 mem=256 reschedule=constant:5s attempts=1 interval=24h
alloc a0 report.crunch[0] node=n1 failed_at=100s reschedules=5s
alloc a1 report.crunch[1] node=n1 status=complete
"#,
        expect![[r#"
            eval complete queued: crunch=0
        "#]],
    );
}

#[test]
fn canary_update_places_canaries_first() {
    check(
        r#"
node n1
node n2
job web version=0
group api count=3 cpu=500 mem=256
job web version=1
group api count=3 cpu=600 mem=256 canary=1 max_parallel=1
alloc a0 web.api[0] node=n1 version=0
alloc a1 web.api[1] node=n2 version=0
alloc a2 web.api[2] node=n1 version=0
"#,
        expect![[r#"
            eval complete queued: api=0
            place n2 web.api[0] (id-2) v1 cpu=600 mem=256 deployment=id-1
            deployment id-1 job=web v1 api:3/canary=1
        "#]],
    );
}

#[test]
fn promoted_canary_rolls_with_max_parallel() {
    check(
        r#"
node n1
node n2
job web version=0
group api count=3 cpu=500 mem=256
job web version=1
group api count=3 cpu=600 mem=256 canary=1 max_parallel=1
alloc a0 web.api[0] node=n1 version=0
alloc a1 web.api[1] node=n2 version=0
alloc a2 web.api[2] node=n1 version=0
alloc c0 web.api[0] node=n2 version=1
deployment web version=1 promoted=api
"#,
        expect![[r#"
            eval complete queued: api=0
            stop n1 web.api[0] (a0): alloc replaced by a promoted canary
            stop n2 web.api[1] (a1): alloc replaced by a newer job version
            place n2 web.api[1] (id-1) v1 cpu=600 mem=256 prev=a1 deployment=deploy-web
        "#]],
    );
}

#[test]
fn in_place_update_when_tasks_are_unchanged() {
    check(
        r#"
node n1
job web version=0 priority=40
group api count=2 cpu=500 mem=256
job web version=1 priority=60
group api count=2 cpu=500 mem=256
alloc a0 web.api[0] node=n1 version=0
alloc a1 web.api[1] node=n1 version=0
"#,
        expect![[r#"
            eval complete queued: api=0
            update n1 web.api[0] (a0) v1 cpu=500 mem=256
            update n1 web.api[1] (a1) v1 cpu=500 mem=256
            deployment id-1 job=web v1 api:2/canary=0
        "#]],
    );
}

#[test]
fn job_stopped_stops_everything() {
    check(
        r#"
node n1
job web stop=true
group api count=2
alloc a0 web.api[0] node=n1
alloc a1 web.api[1] node=n1 status=complete
"#,
        expect![[r#"
            eval complete queued: 
            stop n1 web.api[0] (a0): alloc not needed since the job was stopped
        "#]],
    );
}

#[test]
fn system_job_on_a_new_node() {
    check(
        r#"
node n1
node n2
node n3 class=new
node n4 eligible=false
node n5 drivers=docker
job agent type=system
group collect cpu=100 mem=64
alloc a1 agent.collect[0] node=n1
alloc a2 agent.collect[0] node=n2
eval trigger=node-update node=n3
"#,
        expect![[r#"
            eval complete queued: collect=0
            place n3 agent.collect[0] (id-1) v0 cpu=100 mem=64
        "#]],
    );
}

#[test]
fn sysbatch_runs_once_per_node() {
    check(
        r#"
node n1
node n2
job sweep type=sysbatch
group once cpu=100 mem=64
alloc a1 sweep.once[0] node=n1 status=complete
"#,
        expect![[r#"
            eval complete queued: once=0
            place n2 sweep.once[0] (id-1) v0 cpu=100 mem=64
        "#]],
    );
}

#[test]
fn spread_with_targets() {
    check(
        r#"
node a1 dc=dc1
node a2 dc=dc1
node a3 dc=dc1
node b1 dc=dc2
node b2 dc=dc2
node b3 dc=dc2
job web dcs=dc*
spread ${node.datacenter} weight=100 dc1=70 dc2=30
group api count=10 cpu=100 mem=64
"#,
        expect![[r#"
            eval complete queued: api=0
            place a1 web.api[1] (id-3) v0 cpu=100 mem=64 deployment=id-1
            place a1 web.api[5] (id-7) v0 cpu=100 mem=64 deployment=id-1
            place a1 web.api[9] (id-11) v0 cpu=100 mem=64 deployment=id-1
            place a2 web.api[3] (id-5) v0 cpu=100 mem=64 deployment=id-1
            place a2 web.api[8] (id-10) v0 cpu=100 mem=64 deployment=id-1
            place a3 web.api[2] (id-4) v0 cpu=100 mem=64 deployment=id-1
            place a3 web.api[7] (id-9) v0 cpu=100 mem=64 deployment=id-1
            place b1 web.api[0] (id-2) v0 cpu=100 mem=64 deployment=id-1
            place b2 web.api[6] (id-8) v0 cpu=100 mem=64 deployment=id-1
            place b3 web.api[4] (id-6) v0 cpu=100 mem=64 deployment=id-1
            deployment id-1 job=web v0 api:10/canary=0
        "#]],
    );
}

#[test]
fn even_spread_without_targets() {
    check(
        r#"
node a1 dc=dc1 cpu=16000 mem=32768
node b1 dc=dc2
node c1 dc=dc3
job web
group api count=6 cpu=100 mem=64
spread ${node.datacenter}
"#,
        expect![[r#"
            eval complete queued: api=0
            place a1 web.api[2] (id-4) v0 cpu=100 mem=64 deployment=id-1
            place a1 web.api[5] (id-7) v0 cpu=100 mem=64 deployment=id-1
            place b1 web.api[1] (id-3) v0 cpu=100 mem=64 deployment=id-1
            place b1 web.api[4] (id-6) v0 cpu=100 mem=64 deployment=id-1
            place c1 web.api[0] (id-2) v0 cpu=100 mem=64 deployment=id-1
            place c1 web.api[3] (id-5) v0 cpu=100 mem=64 deployment=id-1
            deployment id-1 job=web v0 api:6/canary=0
        "#]],
    );
}

#[test]
fn preemption_of_lower_priority_work() {
    let cluster = r#"
node n1 cpu=2000 mem=4096
job low priority=20
group g count=3 cpu=600 mem=1024
job mid priority=45
group g count=1 cpu=200 mem=256
job high priority=70
group g count=1 cpu=1000 mem=1024
alloc l0 low.g[0] node=n1
alloc l1 low.g[1] node=n1
alloc l2 low.g[2] node=n1
alloc m0 mid.g[0] node=n1
eval job=high
"#;
    check(
        &format!("config preempt_service=true\n{cluster}"),
        expect![[r#"
            eval complete queued: g=0
            place n1 high.g[0] (id-2) v0 cpu=1000 mem=1024 preempting=l0,l1 deployment=id-1
            deployment id-1 job=high v0 g:1/canary=0
            preempt n1 low.g[0] (l0) by id-2
            preempt n1 low.g[1] (l1) by id-2
            created id-3 pending job=low trigger=preemption
        "#]],
    );
    // Nomad's default: service jobs do not preempt; the group blocks.
    check(
        cluster,
        expect![[r#"
            eval complete queued: g=1
            deployment id-1 job=high v0 g:1/canary=0
            created id-2 blocked job=high trigger=queued-allocs classes=1ok/0no escaped=false
            failed g: evaluated=1 filtered=0 exhausted=1 coalesced=0
              exhausted cpu: 1
        "#]],
    );
}

#[test]
fn constraints_filter_with_failed_tg_allocs() {
    check(
        r#"
node n1 attr.kernel.name=darwin
node n2 class=gpu attr.cpu.arch=arm64
node n3 mem=512
node n4 dc=dc9
job web dcs=dc1
constraint ${attr.kernel.name} = linux
group api count=2 cpu=500 mem=1024
constraint ${attr.cpu.arch} != arm64
"#,
        expect![[r#"
            eval complete queued: api=2
            deployment id-1 job=web v0 api:2/canary=0
            created id-2 blocked job=web trigger=queued-allocs classes=1ok/2no escaped=false
            failed api: evaluated=3 filtered=2 exhausted=1 coalesced=1
              filtered ${attr.cpu.arch} != arm64: 1
              filtered ${attr.kernel.name} = linux: 1
              exhausted memory: 1
        "#]],
    );
}

#[test]
fn ports_static_dynamic_and_collisions() {
    check(
        r#"
node n1 ports=20000-20002 reserved_ports=8080
node n2 ports=20000-20002
node n3 ports=20000-20002
job web
group api count=3 cpu=100 mem=64 static=http:8080 dynamic=admin
alloc x0 web.api[5] node=n3 ports=8080 status=running
"#,
        expect![[r#"
            eval complete queued: api=1
            place n2 web.api[0] (id-2) v0 cpu=100 mem=64 ports=http:8080,admin:20002 deployment=id-1
            deployment id-1 job=web v0 api:3/canary=0
            created id-3 blocked job=web trigger=queued-allocs classes=1ok/0no escaped=false
            failed api: evaluated=3 filtered=0 exhausted=3 coalesced=0
              exhausted network: reserved port collision: 3
        "#]],
    );
}

#[test]
fn distinct_hosts_and_property() {
    check(
        r#"
node n1 meta.rack=r1
node n2 meta.rack=r1
node n3 meta.rack=r2
node n4 meta.rack=r3
job web
group api count=4 cpu=100 mem=64
constraint ${meta.rack} distinct_property 1
"#,
        expect![[r#"
            eval complete queued: api=1
            place n1 web.api[1] (id-3) v0 cpu=100 mem=64 deployment=id-1
            place n3 web.api[2] (id-4) v0 cpu=100 mem=64 deployment=id-1
            place n4 web.api[0] (id-2) v0 cpu=100 mem=64 deployment=id-1
            deployment id-1 job=web v0 api:4/canary=0
            created id-5 blocked job=web trigger=queued-allocs classes=3ok/0no escaped=true
            failed api: evaluated=4 filtered=4 exhausted=0 coalesced=0
              filtered distinct_property: 4
        "#]],
    );
}

#[test]
fn cores_and_devices() {
    check(
        r#"
node n1 cpu=8000 cores=8
node n2 cpu=8000 cores=8 device=nvidia/gpu/t4:2
job ml
group train count=3 cores=2 mem=512 device=nvidia/gpu:1
"#,
        expect![[r#"
            eval complete queued: train=1
            place n2 ml.train[0] (id-2) v0 cpu=2000 mem=512 cores=0,1 devices=n2-t4-0 deployment=id-1
            place n2 ml.train[1] (id-3) v0 cpu=2000 mem=512 cores=2,3 devices=n2-t4-1 deployment=id-1
            deployment id-1 job=ml v0 train:3/canary=0
            created id-4 blocked job=ml trigger=queued-allocs classes=1ok/0no escaped=true
            failed train: evaluated=2 filtered=1 exhausted=1 coalesced=0
              filtered missing devices: 1
              exhausted devices: no free instances: 1
        "#]],
    );
}

#[test]
fn blocked_eval_reblocks() {
    check(
        r#"
node n1 cpu=1000
job web
group api count=2 cpu=800 mem=64
eval status=blocked id=blocked-1
"#,
        expect![[r#"
            eval blocked queued: api=1
            place n1 web.api[0] (id-2) v0 cpu=800 mem=64 deployment=id-1
            deployment id-1 job=web v0 api:2/canary=0
            failed api: evaluated=1 filtered=0 exhausted=1 coalesced=0
              exhausted cpu: 1
        "#]],
    );
}

#[test]
fn deregistered_job() {
    check(
        r#"
node n1
job gone deregistered=true
group g count=1
alloc a0 gone.g[0] node=n1
eval job=gone
"#,
        expect![[r#"
            eval complete queued: 
            stop n1 gone.g[0] (a0): alloc not needed since the job was deregistered
        "#]],
    );
}

/// With a deployment whose health the servers track, a running but not
/// yet healthy allocation of the new version holds its max_parallel slot.
#[test]
fn rolling_update_waits_for_tracked_health() {
    let cluster = r#"
node n1
node n2
job web version=0
group api count=3 cpu=500 mem=256
job web version=1
group api count=3 cpu=600 mem=256 max_parallel=1
alloc a0 web.api[0] node=n1 version=0
alloc a1 web.api[1] node=n2 version=0
alloc c2 web.api[2] node=n1 version=1 deployment=deploy-web HEALTH
deployment web version=1 tracked=true
"#;
    check(
        &cluster.replace("HEALTH", ""),
        expect![[r#"
            eval complete queued: api=0
        "#]],
    );
    check(
        &cluster.replace("HEALTH", "healthy=true"),
        expect![[r#"
            eval complete queued: api=0
            stop n1 web.api[0] (a0): alloc replaced by a newer job version
            place n1 web.api[0] (id-1) v1 cpu=600 mem=256 prev=a0 deployment=deploy-web
        "#]],
    );
}

/// A failed rollout replaces nothing more of the old version.
#[test]
fn failed_deployment_halts_the_rollout() {
    check(
        r#"
node n1
job web version=0
group api count=2 cpu=500 mem=256
job web version=1
group api count=2 cpu=600 mem=256 max_parallel=1
alloc a0 web.api[0] node=n1 version=0
alloc c1 web.api[1] node=n1 version=1 deployment=deploy-web healthy=true
deployment web version=1 tracked=true failed=true
"#,
        expect![[r#"
            eval complete queued: api=0
        "#]],
    );
}

/// A new job version cancels the rollout of the previous one and starts
/// its own.
#[test]
fn newer_version_cancels_the_active_deployment() {
    check(
        r#"
node n1
job web version=0
group api count=1 cpu=500 mem=256
job web version=1
group api count=1 cpu=600 mem=256 max_parallel=1
alloc a0 web.api[0] node=n1 version=0
deployment web version=0 tracked=true
"#,
        expect![[r#"
            eval complete queued: api=0
            stop n1 web.api[0] (a0): alloc replaced by a newer job version
            place n1 web.api[0] (id-2) v1 cpu=600 mem=256 prev=a0 deployment=id-1
            deployment id-1 job=web v1 api:1/canary=0
            deployment deploy-web -> cancelled (Cancelled due to newer version of job)
        "#]],
    );
}

/// A failed allocation of the new version, not replaced, holds its
/// max_parallel slot until judged; once judged unhealthy nothing more is
/// replaced.
#[test]
fn failed_new_allocation_holds_the_rollout() {
    let cluster = r#"
node n1
job web version=0
group api count=3 cpu=500 mem=256
job web version=1
group api count=3 cpu=600 mem=256 max_parallel=2 attempts=0 interval=1h unlimited=false
alloc a0 web.api[0] node=n1 version=0
alloc a2 web.api[2] node=n1 version=0
alloc c1 web.api[1] node=n1 version=1 status=failed deployment=deploy-web HEALTH
deployment web version=1 tracked=true
"#;
    check(
        &cluster.replace("HEALTH", ""),
        expect![[r#"
            eval complete queued: api=0
            stop n1 web.api[0] (a0): alloc replaced by a newer job version
            place n1 web.api[0] (id-1) v1 cpu=600 mem=256 prev=a0 deployment=deploy-web
        "#]],
    );
    check(
        &cluster.replace("HEALTH", "healthy=false"),
        expect![[r#"
            eval complete queued: api=0
        "#]],
    );
}

/// A new version replaces an allocation an older version left failed for
/// good, while a failure of the current version stays as it is.
#[test]
fn new_version_replaces_failed_allocations_of_older_ones() {
    let cluster = r#"
node n1
job web version=0
group api count=1 cpu=500 mem=256 attempts=0 interval=1h unlimited=false
job web version=VERSION
group api count=1 cpu=600 mem=256 attempts=0 interval=1h unlimited=false
alloc f0 web.api[0] node=n1 version=0 status=failed
"#;
    check(
        &cluster.replace("VERSION", "1"),
        expect![[r#"
            eval complete queued: api=0
            stop n1 web.api[0] (f0): alloc replaced by a newer job version
            place n1 web.api[0] (id-2) v1 cpu=600 mem=256 prev=f0 deployment=id-1
            deployment id-1 job=web v1 api:1/canary=0
        "#]],
    );
    check(
        &cluster.replace("VERSION", "0"),
        expect![[r#"
            eval complete queued: api=0
        "#]],
    );
}
