#![allow(clippy::unwrap_used, reason = "test code")]

use super::*;

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

#[test]
fn rules() {
    let web = id("spiffe://example.org/web");
    let db = id("spiffe://example.org/db");
    let foreign = id("spiffe://other.org/web");
    assert!(Authorizer::any().authorize(&foreign, &[]).is_ok());
    assert!(Authorizer::exact(web.clone()).authorize(&web, &[]).is_ok());
    let err = Authorizer::exact(web.clone())
        .authorize(&db, &[])
        .unwrap_err();
    assert!(err.is_unauthorized());
    assert_eq!(
        err.to_string(),
        "peer spiffe://example.org/db is not authorized: expected spiffe://example.org/web"
    );
    let set = Authorizer::one_of([web.clone(), foreign.clone()]);
    assert!(set.authorize(&foreign, &[]).is_ok());
    assert!(set.authorize(&db, &[]).is_err());
    let td = Authorizer::member_of("example.org".parse().unwrap());
    assert!(td.authorize(&db, &[]).is_ok());
    assert!(td.authorize(&foreign, &[]).is_err());
    let f = Authorizer::from_fn(|id, chain| {
        if chain.is_empty() && id.path() == "/web" {
            Ok(())
        } else {
            Err("no".into())
        }
    });
    assert!(f.authorize(&web, &[]).is_ok());
    assert!(f.authorize(&db, &[]).is_err());
    assert_eq!(format!("{td:?}"), "Authorizer(member of example.org)");
}
