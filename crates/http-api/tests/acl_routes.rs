//! Every route the router serves has an entry in the ACL table, and every
//! entry names a route that exists: a new endpoint cannot ship without
//! saying what it needs.

#[test]
fn every_route_has_an_acl_entry_and_every_entry_a_route() {
    let routes = http_api::route_list();
    assert!(routes.len() > 60, "found only {} routes", routes.len());
    let missing: Vec<String> = routes
        .iter()
        .filter(|(method, path)| acl::http_need(method, path).is_none())
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(missing.is_empty(), "routes without an ACL table entry: {missing:#?}");
    let stale: Vec<String> = acl::table::HTTP_ROUTES
        .iter()
        .filter(|(method, path, _)| !routes.iter().any(|(m, p)| m == method && p == path))
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    assert!(
        stale.is_empty(),
        "ACL table entries for routes that do not exist: {stale:#?}"
    );
}
