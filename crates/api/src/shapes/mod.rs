//! Docker's shapes for responses the bollard models encode differently: the key order of dockerd's Go
//! structs (the models follow the API spec's order) and the keys dockerd writes as `null` (the models leave
//! `None` out). `container-inspect.json` is the skeleton of a real dockerd 28 `GET /containers/{id}/json`
//! (`shared/reference/docker-cli-output/api/container-inspect-httpd.json`, Docker's output used as data):
//! every key in dockerd's order, `null` where the value is data (ports, labels, lists) rather than structure,
//! `*` standing for every network under `Networks`, and `"?"` for a key dockerd writes only when it has a
//! value (`SizeRw` and `SizeRootFs`, with `?size=1`).

use serde_json::{Map, Value};

const CONTAINER_INSPECT: &str = include_str!("container-inspect.json");

/// Puts the keys of `v` in dockerd's order for a container inspect, with dockerd's `null`s for keys it
/// lacks; keys dockerd does not have (newer fields) follow in their own order.
pub fn container_inspect(v: Value) -> Value {
    let template: Value = serde_json::from_str(CONTAINER_INSPECT).unwrap_or(Value::Null);
    conform(v, &template)
}

fn conform(v: Value, template: &Value) -> Value {
    let (Value::Object(mut obj), Value::Object(t)) = (v.clone(), template) else {
        return v;
    };
    if let Some(each) = t.get("*") {
        // A map keyed by data (network names) whose values share one shape.
        return Value::Object(
            obj.into_iter()
                .map(|(k, x)| (k, conform(x, each)))
                .collect(),
        );
    }
    let mut out = Map::new();
    for (k, sub) in t {
        if sub.as_str() == Some("?") && !obj.contains_key(k) {
            continue;
        }
        let value = obj.remove(k).unwrap_or(Value::Null);
        let value = if sub.is_object() {
            conform(value, sub)
        } else {
            value
        };
        out.insert(k.clone(), value);
    }
    out.extend(obj);
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_follow_dockerds_order_with_its_nulls() {
        let got = container_inspect(json!({
            "Name": "/x", "Id": "abc",
            "HostConfig": {"Privileged": false, "Binds": ["/a:/b"]},
            "NetworkSettings": {"Networks": {"n1": {"IPAddress": "10.0.0.2"}}},
            "Extra": 1
        }));
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys[0], "Id");
        assert_eq!(keys.last().unwrap().as_str(), "Extra");
        assert_eq!(got["HostConfig"]["VolumesFrom"], Value::Null);
        assert!(got["HostConfig"].get("CapAdd").is_some());
        assert_eq!(got["HostConfig"]["Binds"], json!(["/a:/b"]));
        let n1 = &got["NetworkSettings"]["Networks"]["n1"];
        assert_eq!(n1["IPAddress"], "10.0.0.2");
        assert!(n1.get("Aliases").is_some());
        assert_eq!(n1.as_object().unwrap().keys().next().unwrap(), "IPAMConfig");
        assert!(got.get("SizeRw").is_none(), "written only when asked for");
    }

    #[test]
    fn sizes_follow_the_graph_driver_when_present() {
        let got =
            container_inspect(json!({"Id": "abc", "SizeRootFs": 30, "SizeRw": 5, "Mounts": []}));
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        let at = |k: &str| keys.iter().position(|x| *x == k).unwrap();
        assert_eq!(at("SizeRw") + 1, at("SizeRootFs"));
        assert_eq!(at("GraphDriver") + 1, at("SizeRw"));
        assert_eq!(at("SizeRootFs") + 1, at("Mounts"));
        assert_eq!(got["SizeRw"], 5);
    }
}
