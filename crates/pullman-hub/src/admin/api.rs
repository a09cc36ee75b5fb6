//! The admin API's endpoints: a path enum, one handler each, JSON errors with the status
//! codes of `docs/admin-api.md`.
//!
//! Changes go through [`Reconfig::edit`](crate::reload::Reconfig::edit): a PUT or DELETE
//! edits the config document (the same tables and keys as the TOML file; a JSON body is
//! converted value for value), and the whole is validated as a file would be.

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::{auth, Admin};
use crate::config::Config;
use crate::metrics;
use crate::reload::{config_from_document, ChangeError};

/// Largest request body the admin API reads: a pool or a route is a few hundred bytes, so
/// 64 KiB is generous and still bounds what one request makes the hub buffer.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// A refused admin request: its status and what to tell the caller.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> ApiError {
        let status = match &e {
            ChangeError::Invalid(_) => StatusCode::BAD_REQUEST,
            ChangeError::NotFound(_) => StatusCode::NOT_FOUND,
            ChangeError::Conflict(_) => StatusCode::CONFLICT,
            ChangeError::Unavailable(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.message())
    }
}

/// Every resource the admin API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint<'a> {
    Pools,
    Pool(&'a str),
    Routes,
    Route(&'a str),
    Programs,
    Program(&'a str),
    Workers,
    DrainWorker(&'a str),
    Reload,
    Metrics,
}

impl<'a> Endpoint<'a> {
    fn parse(path: &'a str) -> Option<Endpoint<'a>> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        Some(match segments.as_slice() {
            ["pools"] => Endpoint::Pools,
            ["pools", name] if !name.is_empty() => Endpoint::Pool(name),
            ["routes"] => Endpoint::Routes,
            ["routes", name] if !name.is_empty() => Endpoint::Route(name),
            ["programs"] => Endpoint::Programs,
            ["programs", name] if !name.is_empty() => Endpoint::Program(name),
            ["workers"] => Endpoint::Workers,
            ["workers", id, "drain"] => Endpoint::DrainWorker(id),
            ["reload"] => Endpoint::Reload,
            ["metrics"] => Endpoint::Metrics,
            _ => return None,
        })
    }

    fn methods(self) -> &'static [Method] {
        match self {
            Endpoint::Pools
            | Endpoint::Routes
            | Endpoint::Programs
            | Endpoint::Workers
            | Endpoint::Metrics => &[Method::GET],
            Endpoint::Pool(_) | Endpoint::Route(_) | Endpoint::Program(_) => {
                &[Method::GET, Method::PUT, Method::DELETE]
            }
            Endpoint::DrainWorker(_) | Endpoint::Reload => &[Method::POST],
        }
    }
}

/// Answers one admin request.
pub(crate) async fn handle(
    admin: &Admin,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    match dispatch(admin, req).await {
        Ok(resp) => {
            if method != Method::GET {
                tracing::info!(%peer, %method, %path, status = resp.status().as_u16(), "admin change");
            }
            resp
        }
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED {
                tracing::warn!(%peer, %method, %path, reason = %e.message, "admin request refused");
            } else {
                tracing::info!(%peer, %method, %path, status = e.status.as_u16(), error = %e.message, "admin request failed");
            }
            error_response(e)
        }
    }
}

async fn dispatch(
    admin: &Admin,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let token = admin
        .reconfig
        .with_current(|c| c.admin.as_ref().map(|a| a.token.clone()))
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the admin API is off"))?;
    // Before anything else, so that without the token nothing is learnt, not even paths.
    auth::check(req.headers(), &token)
        .map_err(|refused| ApiError::new(StatusCode::UNAUTHORIZED, refused.0))?;

    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let endpoint = Endpoint::parse(&path)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no endpoint {path}")))?;
    let method = req.method().clone();
    if !endpoint.methods().contains(&method) {
        let allow: Vec<&str> = endpoint.methods().iter().map(Method::as_str).collect();
        let mut resp = error_response(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "{method} is not allowed on {path}; use {}",
                allow.join(", ")
            ),
        ));
        if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
            resp.headers_mut().insert(ALLOW, value);
        }
        return Ok(resp);
    }

    match (method, endpoint) {
        (Method::GET, Endpoint::Pools) => Ok(ok(json!({ "pools": pools(admin) }))),
        (Method::GET, Endpoint::Pool(name)) => {
            let pool = pools(admin)
                .into_iter()
                .find(|p| p["name"] == name)
                .ok_or_else(|| no_pool(name))?;
            Ok(ok(pool))
        }
        (Method::PUT, Endpoint::Pool(name)) => put(admin, Kind::Pool, name, req).await,
        (Method::DELETE, Endpoint::Pool(name)) => {
            let with_routes = match query.as_str() {
                "" => false,
                "with_routes=true" => true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query {other:?}; the only one is with_routes=true"
                    )))
                }
            };
            delete_pool(admin, name, with_routes)
        }
        (Method::GET, Endpoint::Routes) => Ok(ok(json!({ "routes": routes(admin) }))),
        (Method::GET, Endpoint::Route(name)) => {
            let route = routes(admin)
                .into_iter()
                .find(|r| r["name"] == name)
                .ok_or_else(|| no_route(name))?;
            Ok(ok(route))
        }
        (Method::PUT, Endpoint::Route(name)) => put(admin, Kind::Route, name, req).await,
        (Method::DELETE, Endpoint::Route(name)) => delete_route(admin, name),
        (Method::GET, Endpoint::Programs) => Ok(ok(json!({ "programs": programs(admin) }))),
        (Method::GET, Endpoint::Program(name)) => {
            let program = programs(admin)
                .into_iter()
                .find(|p| p["name"] == name)
                .ok_or_else(|| {
                    ApiError::new(StatusCode::NOT_FOUND, format!("no program named {name:?}"))
                })?;
            Ok(ok(program))
        }
        (Method::PUT, Endpoint::Program(name)) => put(admin, Kind::Program, name, req).await,
        (Method::DELETE, Endpoint::Program(name)) => {
            delete_named(admin, "program", name)?;
            Ok(ok(json!({ "deleted": name })))
        }
        (Method::GET, Endpoint::Workers) => Ok(ok(json!({ "workers": workers(admin) }))),
        (Method::POST, Endpoint::DrainWorker(id)) => drain_worker(admin, id),
        (Method::POST, Endpoint::Reload) => {
            admin.reconfig.reload()?;
            let file = admin.reconfig.file().map(|p| p.display().to_string());
            Ok(ok(json!({ "reloaded": file })))
        }
        (Method::GET, Endpoint::Metrics) => {
            let sources: Vec<&dyn metrics::Source> =
                admin.sources.iter().map(|s| s.as_ref()).collect();
            let text = metrics::render(&sources);
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            );
            Ok(resp)
        }
        (method, endpoint) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed on {endpoint:?}"),
        )),
    }
}

/// Every pool: its table as configured (without its token) and its numbers now. Pools
/// removed but still finishing their requests come last, `"state": "removing"`.
fn pools(admin: &Admin) -> Vec<Value> {
    let written = admin.reconfig.with_current(|c| {
        document_array(&c.document.0, "pool")
            .iter()
            .map(|pool| {
                let mut pool = pool.clone();
                if let Some(table) = pool.as_table_mut() {
                    table.remove("token");
                }
                pool
            })
            .collect::<Vec<_>>()
    });
    let live = admin.state.table.load();
    let mut out = Vec::new();
    for table in written {
        let name = table.get("name").and_then(|n| n.as_str()).unwrap_or("");
        let status = live.pools.get(name).map(|p| p.status()).unwrap_or_default();
        out.push(json!({
            "name": name,
            "state": "active",
            "config": table,
            "queued": status.queued,
            "workers": status.workers,
            "credits_free": status.credits_free,
            "in_flight": status.in_flight,
        }));
    }
    let retiring: Vec<_> = admin.state.retiring.lock().values().cloned().collect();
    for pool in retiring {
        let status = pool.status();
        out.push(json!({
            "name": pool.name(),
            "state": "removing",
            "queued": status.queued,
            "workers": status.workers,
            "credits_free": status.credits_free,
            "in_flight": status.in_flight,
        }));
    }
    out
}

/// Every route in the order they are tried, as configured, with its position.
fn routes(admin: &Admin) -> Vec<Value> {
    admin.reconfig.with_current(|c| {
        document_array(&c.document.0, "route")
            .iter()
            .enumerate()
            .map(|(position, route)| {
                let mut route = serde_json::to_value(route).unwrap_or(Value::Null);
                if let Some(object) = route.as_object_mut() {
                    object.insert("position".into(), position.into());
                }
                route
            })
            .collect()
    })
}

/// Every supervised program: its table as configured and how it is doing now.
fn programs(admin: &Admin) -> Vec<Value> {
    let written = admin
        .reconfig
        .with_current(|c| document_array(&c.document.0, "program").to_vec());
    let status = admin.reconfig.supervisor().status();
    written
        .into_iter()
        .map(|table| {
            let name = table.get("name").and_then(|n| n.as_str()).unwrap_or("");
            let now = status.iter().find(|p| p.name == name);
            json!({
                "name": name,
                "config": table,
                "state": now.map(|p| p.state),
                "instances": now.map(|p| p.instances),
                "running": now.map(|p| p.running),
                "restarts": now.map(|p| p.restarts),
                "pids": now.map(|p| p.pids.clone()),
            })
        })
        .collect()
}

fn workers(admin: &Admin) -> Vec<Value> {
    let mut out = Vec::new();
    for pool in admin.state.all_pools() {
        for w in pool.workers() {
            out.push(json!({
                "id": w.id,
                "pool": pool.name(),
                "name": w.meta.name,
                "peer": w.meta.peer,
                "in_flight": w.in_flight,
                "credits": w.credits,
                "draining": w.draining,
            }));
        }
    }
    out
}

/// A PUT's status: 201 when it created the item, 200 when it replaced one.
fn put_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// What a PUT names: the array of tables in the config document it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Pool,
    Route,
    Program,
}

impl Kind {
    /// The array's key in the document (`[[pool]]`), which is also the key of the name in
    /// the answer.
    fn key(self) -> &'static str {
        match self {
            Kind::Pool => "pool",
            Kind::Route => "route",
            Kind::Program => "program",
        }
    }
}

/// A PUT of a pool, route or program, read from its JSON body: the change it makes to the
/// config document. Reading it and applying it are pure (no hub, no I/O), so a change can
/// be tried on a copy of the document, as the fuzz target does.
#[derive(Debug)]
pub(crate) struct Put {
    kind: Kind,
    name: String,
    body: toml::Table,
    /// Routes only: where the route goes (`position` in the body).
    position: Option<usize>,
}

/// Where a PUT left its item: whether it created it, and its index in its array.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Placed {
    pub(crate) created: bool,
    pub(crate) index: usize,
}

impl Put {
    /// Reads the body of a PUT to the item `name` of `kind`.
    pub(crate) fn from_json(kind: Kind, name: &str, json: &[u8]) -> Result<Put, ApiError> {
        let mut body = table_from_json(json)?;
        name_matches_path(&mut body, name)?;
        let position = match kind {
            Kind::Route => route_position(&mut body)?,
            Kind::Pool | Kind::Program => None,
        };
        Ok(Put {
            kind,
            name: name.to_owned(),
            body,
            position,
        })
    }

    /// Makes the change in the config document `doc`; validating the result is the
    /// caller's.
    pub(crate) fn apply(self, doc: &mut toml::Table) -> Result<Placed, ChangeError> {
        match self.kind {
            // Replacing a pool without repeating its token keeps the token.
            Kind::Pool => place_named(doc, "pool", &self.name, self.body, &["token"]),
            Kind::Program => place_named(doc, "program", &self.name, self.body, &[]),
            Kind::Route => place_route(doc, &self.name, self.body, self.position),
        }
    }
}

/// PUT /pools/{name}, /routes/{name} or /programs/{name}: creates or replaces the item.
async fn put(
    admin: &Admin,
    kind: Kind,
    name: &str,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let change = Put::from_json(kind, name, &read_body(req).await?)?;
    let mut placed = Placed::default();
    admin
        .reconfig
        .edit(|doc| {
            placed = change.apply(doc)?;
            Ok(())
        })
        .map_err(|e| relabel(e, kind.key(), placed.index, name))?;
    let Placed { created, index } = placed;
    let answer = match kind {
        Kind::Route => json!({ "route": name, "created": created, "position": index }),
        Kind::Pool | Kind::Program => json!({ kind.key(): name, "created": created }),
    };
    Ok(respond(put_status(created), answer))
}

/// What a PUT with body `json` to the item `name` of `kind` makes of `config`, checked as
/// the admin API checks it (the document edited, written and validated whole), without a
/// running hub: what the fuzz target drives. What only a running hub checks (settings that
/// cannot change live, certificates) is left out.
pub(crate) fn put_offline(
    config: &Config,
    kind: Kind,
    name: &str,
    json: &[u8],
) -> Result<(Config, Placed), ApiError> {
    let change = Put::from_json(kind, name, json)?;
    let mut doc = config.document.0.clone();
    let placed = change.apply(&mut doc)?;
    let new = config_from_document(&doc).map_err(|e| relabel(e, kind.key(), placed.index, name))?;
    Ok((new, placed))
}

/// Creates or replaces (in place) the `[[kind]]` table named `name` in `doc` with `body`;
/// keys in `kept` that the body leaves out keep their old values. Any named array of tables
/// (pools, supervised programs) is changed this way.
fn place_named(
    doc: &mut toml::Table,
    kind: &str,
    name: &str,
    mut body: toml::Table,
    kept: &[&str],
) -> Result<Placed, ChangeError> {
    let items = document_array_mut(doc, kind)?;
    let at = find_named(items, name);
    if let Some(old) = at.and_then(|i| items[i].as_table()) {
        for key in kept {
            if let (false, Some(value)) = (body.contains_key(*key), old.get(*key)) {
                body.insert((*key).into(), value.clone());
            }
        }
    }
    let table = toml::Value::Table(body);
    Ok(match at {
        Some(index) => {
            items[index] = table;
            Placed {
                created: false,
                index,
            }
        }
        None => {
            items.push(table);
            Placed {
                created: true,
                index: items.len() - 1,
            }
        }
    })
}

/// Removes the `[[kind]]` table named `name`.
fn delete_named(admin: &Admin, kind: &str, name: &str) -> Result<(), ApiError> {
    admin.reconfig.edit(|doc| {
        let items = document_array_mut(doc, kind)?;
        let at = find_named(items, name)
            .ok_or_else(|| ChangeError::NotFound(format!("no {kind} named {name:?}")))?;
        items.remove(at);
        Ok(())
    })?;
    Ok(())
}

fn delete_pool(
    admin: &Admin,
    name: &str,
    with_routes: bool,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let mut removed_routes = Vec::new();
    admin.reconfig.edit(|doc| {
        let pools = document_array_mut(doc, "pool")?;
        let at = find_named(pools, name)
            .ok_or_else(|| ChangeError::NotFound(format!("no pool named {name:?}")))?;
        if pools.len() == 1 {
            return Err(ChangeError::Conflict(format!(
                "pool {name:?} is the only pool, and a config needs at least one"
            )));
        }
        pools.remove(at);
        let routes = document_array_mut(doc, "route")?;
        let naming: Vec<usize> = (0..routes.len())
            .filter(|&i| routes[i].get("pool").and_then(|p| p.as_str()) == Some(name))
            .collect();
        removed_routes = naming
            .iter()
            .map(|&i| match routes[i].get("name").and_then(|n| n.as_str()) {
                Some(route) => route.to_string(),
                None => format!("#{i}"),
            })
            .collect();
        if !naming.is_empty() && !with_routes {
            return Err(ChangeError::Conflict(format!(
                "routes still send requests to pool {name:?}: {}; change or delete them first, \
                 or DELETE /pools/{name}?with_routes=true to remove them with the pool",
                removed_routes.join(", ")
            )));
        }
        for i in naming.into_iter().rev() {
            routes.remove(i);
        }
        Ok(())
    })?;
    Ok(ok(
        json!({ "deleted": name, "deleted_routes": removed_routes }),
    ))
}

/// A route body's `position`, taken out of it: where the route goes.
fn route_position(body: &mut toml::Table) -> Result<Option<usize>, ApiError> {
    match body.remove("position") {
        None => Ok(None),
        Some(toml::Value::Integer(n)) if n >= 0 => Ok(Some(n as usize)),
        Some(other) => Err(ApiError::bad_request(format!(
            "position must be an integer from 0, got {other}"
        ))),
    }
}

/// Puts the route `name` in `doc`: in place when it exists, else last, unless `position`
/// says where.
fn place_route(
    doc: &mut toml::Table,
    name: &str,
    body: toml::Table,
    position: Option<usize>,
) -> Result<Placed, ChangeError> {
    let routes = document_array_mut(doc, "route")?;
    let at = find_named(routes, name);
    if let Some(i) = at {
        routes.remove(i);
    }
    let index = position.or(at).unwrap_or(routes.len());
    if index > routes.len() {
        return Err(ChangeError::Invalid(format!(
            "position {index} is past the end: there are {} other routes",
            routes.len()
        )));
    }
    routes.insert(index, toml::Value::Table(body));
    Ok(Placed {
        created: at.is_none(),
        index,
    })
}

fn delete_route(admin: &Admin, name: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    delete_named(admin, "route", name)?;
    Ok(ok(json!({ "deleted": name })))
}

fn drain_worker(admin: &Admin, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, format!("no worker with id {id:?}"));
    let id: u64 = id.parse().map_err(|_| not_found())?;
    for pool in admin.state.all_pools() {
        if pool.drain_worker(id) {
            let in_flight = pool
                .workers()
                .iter()
                .find(|w| w.id == id)
                .map_or(0, |w| w.in_flight);
            tracing::info!(
                pool = pool.name(),
                worker_id = id,
                in_flight,
                "worker drained by the admin API"
            );
            return Ok(ok(json!({
                "worker": id,
                "pool": pool.name(),
                "draining": true,
                "in_flight": in_flight,
            })));
        }
    }
    Err(not_found())
}

/// Reads a request body, up to [`MAX_ADMIN_BODY`] bytes.
async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    Ok(Limited::new(req.into_body(), MAX_ADMIN_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {MAX_ADMIN_BODY} bytes"),
                )
            } else {
                ApiError::bad_request(format!("cannot read the body: {e}"))
            }
        })?
        .to_bytes())
}

/// Reads a JSON object as a TOML table (the same keys and value shapes as the file).
fn table_from_json(json: &[u8]) -> Result<toml::Table, ApiError> {
    let value: Value = serde_json::from_slice(json)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(ApiError::bad_request("expected a JSON object"));
    };
    json_to_table(object)
}

fn json_to_table(object: Map<String, Value>) -> Result<toml::Table, ApiError> {
    match toml::Value::try_from(Value::Object(object)) {
        Ok(toml::Value::Table(table)) => Ok(table),
        Ok(_) => Err(ApiError::bad_request("expected a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "the body has a value TOML cannot hold (null?): {e}"
        ))),
    }
}

/// The name comes from the path; a body may repeat it but not contradict it.
fn name_matches_path(body: &mut toml::Table, name: &str) -> Result<(), ApiError> {
    match body.get("name") {
        None => {
            body.insert("name".into(), toml::Value::String(name.into()));
            Ok(())
        }
        Some(toml::Value::String(given)) if given == name => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "the body's name {other} differs from the path's {name:?}"
        ))),
    }
}

fn document_array<'a>(doc: &'a toml::Table, key: &str) -> &'a [toml::Value] {
    doc.get(key)
        .and_then(|v| v.as_array())
        .map_or(&[], |a| a.as_slice())
}

fn document_array_mut<'a>(
    doc: &'a mut toml::Table,
    key: &str,
) -> Result<&'a mut Vec<toml::Value>, ChangeError> {
    doc.entry(key)
        .or_insert_with(|| toml::Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| ChangeError::Invalid(format!("`{key}` is not an array of tables")))
}

fn find_named(items: &[toml::Value], name: &str) -> Option<usize> {
    items
        .iter()
        .position(|item| item.get("name").and_then(|n| n.as_str()) == Some(name))
}

/// Validation names keys by position (`pool[3].timeout`); the caller knows the item by name.
fn relabel(e: ChangeError, kind: &str, index: usize, name: &str) -> ChangeError {
    match e {
        ChangeError::Invalid(message) => {
            let by_index = format!("{kind}[{index}]");
            let by_name = format!("{kind} {name:?}");
            let relabelled = [".", ":"].iter().fold(message, |m, after| {
                m.replace(&format!("{by_index}{after}"), &format!("{by_name}{after}"))
            });
            ChangeError::Invalid(relabelled)
        }
        other => other,
    }
}

fn no_pool(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no pool named {name:?}"))
}

fn no_route(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route named {name:?}"))
}

fn ok(body: Value) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, body)
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut text = body.to_string();
    text.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn error_response(e: ApiError) -> Response<Full<Bytes>> {
    let mut resp = respond(e.status, json!({ "error": e.message }));
    if e.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_to_endpoints() {
        assert_eq!(Endpoint::parse("/pools"), Some(Endpoint::Pools));
        assert_eq!(Endpoint::parse("/pools/a"), Some(Endpoint::Pool("a")));
        assert_eq!(Endpoint::parse("/routes/r"), Some(Endpoint::Route("r")));
        assert_eq!(
            Endpoint::parse("/workers/7/drain"),
            Some(Endpoint::DrainWorker("7"))
        );
        assert_eq!(Endpoint::parse("/reload"), Some(Endpoint::Reload));
        assert_eq!(Endpoint::parse("/metrics"), Some(Endpoint::Metrics));
        for bad in [
            "",
            "/",
            "/pools/",
            "/pools/a/b",
            "/workers/7",
            "/nope",
            "pools",
        ] {
            assert_eq!(Endpoint::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn json_bodies_become_toml_tables() {
        let Value::Object(o) = json!({"name": "p", "queue_limit": 5, "timeout": "2s",
            "header": {"name": "x"}, "method": ["GET"]})
        else {
            unreachable!()
        };
        let t = json_to_table(o).unwrap();
        assert_eq!(t["queue_limit"].as_integer(), Some(5));
        assert_eq!(t["header"]["name"].as_str(), Some("x"));
        let Value::Object(o) = json!({"name": null}) else {
            unreachable!()
        };
        assert!(json_to_table(o).is_err());
    }

    #[test]
    fn the_name_comes_from_the_path() {
        let mut t = toml::Table::new();
        name_matches_path(&mut t, "a").unwrap();
        assert_eq!(t["name"].as_str(), Some("a"));
        name_matches_path(&mut t, "a").unwrap();
        let e = name_matches_path(&mut t, "b").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_put_is_checked_without_a_hub() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hub.toml");
        let config = Config::from_file(path).unwrap();

        let (new, placed) =
            put_offline(&config, Kind::Pool, "demo", br#"{"queue_limit": 7}"#).unwrap();
        assert!(!placed.created);
        let pool = &new.pools[placed.index];
        assert_eq!((pool.name.as_str(), pool.queue_limit), ("demo", 7));
        assert_eq!(
            pool.token,
            config.pool("demo").unwrap().token,
            "the token is kept"
        );

        let route = br#"{"pool": "demo", "path_prefix": "/new", "position": 0}"#;
        let (new, placed) = put_offline(&config, Kind::Route, "new", route).unwrap();
        assert!(placed.created);
        assert_eq!(placed.index, 0);
        assert_eq!(new.routes[0].name.as_deref(), Some("new"));

        for (kind, body) in [
            (Kind::Pool, &b"[1]"[..]),
            (Kind::Pool, br#"{"name": "other"}"#),
            (Kind::Route, br#"{"pool": "demo", "position": 99}"#),
            (Kind::Route, br#"{"pool": "nowhere"}"#),
        ] {
            let e = put_offline(&config, kind, "x", body).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{}", e.message);
        }
    }

    #[test]
    fn errors_name_the_item_not_its_index() {
        let e = relabel(
            ChangeError::Invalid("pool[1].timeout: invalid duration".into()),
            "pool",
            1,
            "p",
        );
        assert_eq!(e.message(), "pool \"p\".timeout: invalid duration");
        let e = relabel(
            ChangeError::Invalid("pool[10].timeout: x".into()),
            "pool",
            1,
            "p",
        );
        assert_eq!(e.message(), "pool[10].timeout: x");
    }
}
