//! A small status page: the jobs, allocations and nodes, read from the API
//! by the browser. A fuller UI comes later; this one needs no build step.

use axum::response::Html;

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drover</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.5rem}
table{border-collapse:collapse;min-width:40rem}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left}
.running,.ready,.complete{color:#17803d}.failed,.down,.dead{color:#b42318}.pending{color:#b54708}
</style></head><body>
<h1>Drover</h1>
<h2>Jobs</h2><table id="jobs"><tr><th>ID</th><th>Type</th><th>Status</th></tr></table>
<h2>Allocations</h2><table id="allocs"><tr><th>ID</th><th>Job</th><th>Group</th><th>Node</th><th>Status</th></tr></table>
<h2>Nodes</h2><table id="nodes"><tr><th>ID</th><th>Name</th><th>Datacenter</th><th>Status</th></tr></table>
<script>
function row(table, cells){const tr=document.createElement('tr');for(const [text,cls] of cells){const td=document.createElement('td');td.textContent=text;if(cls)td.className=cls;tr.appendChild(td);}document.getElementById(table).appendChild(tr);}
async function load(){
 const [jobs,allocs,nodes]=await Promise.all(['/v1/jobs','/v1/allocations','/v1/nodes'].map(p=>fetch(p).then(r=>r.json())));
 jobs.forEach(j=>row('jobs',[[j.ID],[j.Type],[j.Status,j.Status]]));
 allocs.forEach(a=>row('allocs',[[a.ID.slice(0,8)],[a.JobID],[a.TaskGroup],[a.NodeID.slice(0,8)],[a.ClientStatus,a.ClientStatus]]));
 nodes.forEach(n=>row('nodes',[[n.ID.slice(0,8)],[n.Name],[n.Datacenter],[n.Status,n.Status]]));
}
load();
</script></body></html>"#;

pub async fn index() -> Html<&'static str> {
    Html(PAGE)
}
