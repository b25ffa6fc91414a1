//! The grid proxy's face: its REST API's types as tfgrid-sdk-go's `grid-proxy/pkg/types`
//! defines them, and [`Proxy`], the trait of its client.
//!
//! The proxy is an indexer: what it lists lags the chain and the nodes (GRID.md). Its
//! `used_resources` already include the node's reserves, so free capacity is total − used.

mod contract;
mod node;

use serde::{Deserialize, Serialize};

pub use contract::*;
pub use node::*;

use crate::{GIB, GridFuture};

/// The SSD a node keeps back for itself, in bytes (zos reserves 20 GiB).
pub const SSD_RESERVE: u64 = 20 * GIB;
/// The least memory a node keeps back for itself, in bytes.
pub const MIN_MEMORY_RESERVE: u64 = 2 * GIB;

/// Capacity figures (grid-proxy's `Capacity`): vCPU count and bytes of memory, SSD and HDD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// vCPU count.
    pub cru: u64,
    /// SSD, bytes.
    pub sru: u64,
    /// HDD, bytes.
    pub hru: u64,
    /// Memory, bytes.
    pub mru: u64,
}

impl Resources {
    /// Component-wise sum.
    pub fn plus(self, o: Resources) -> Resources {
        Resources {
            cru: self.cru + o.cru,
            mru: self.mru + o.mru,
            sru: self.sru + o.sru,
            hru: self.hru + o.hru,
        }
    }
}

/// What a node keeps back for itself: memory max(10 % of total, 2 GiB), SSD 20 GiB, HDD none.
pub fn reserves(total: &Resources) -> Resources {
    Resources {
        cru: 0,
        mru: (total.mru / 10).max(MIN_MEMORY_RESERVE),
        sru: SSD_RESERVE,
        hru: 0,
    }
}

/// Free capacity from a proxy listing: total − used, never below zero. The proxy's `used`
/// already includes the node's reserves (grid-proxy's own SQL adds them), so nothing is
/// subtracted again.
pub fn free_resources(total: &Resources, used: &Resources) -> Resources {
    Resources {
        cru: total.cru.saturating_sub(used.cru),
        mru: total.mru.saturating_sub(used.mru),
        sru: total.sru.saturating_sub(used.sru),
        hru: total.hru.saturating_sub(used.hru),
    }
}

/// Paging of every listing (grid-proxy's `Limit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    /// Page size (the proxy's default is 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Page number, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Also return the count of all matches, in the `count` header.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ret_count: bool,
}

impl Limit {
    /// Page `page` of `size` entries, with the total count.
    pub fn page(page: u32, size: u32) -> Limit {
        Limit {
            size: Some(size),
            page: Some(page),
            ret_count: true,
        }
    }
}

/// One page of a listing and, when asked (`ret_count`), the count of all matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The entries of this page.
    pub items: Vec<T>,
    /// Count of all matches (the `count` header).
    pub count: Option<u64>,
}

/// The header carrying the count of all matches.
pub const COUNT_HEADER: &str = "count";

/// The grid proxy: read-only listings that lag the chain and the nodes.
pub trait Proxy: Send + Sync {
    /// `GET /nodes`: one page of the nodes matching `filter`.
    fn nodes<'a>(&'a self, filter: &'a NodeFilter, limit: Limit) -> GridFuture<'a, Page<Node>>;
    /// `GET /nodes/{id}`: one node, capacity nested.
    fn node(&self, node_id: u32) -> GridFuture<'_, NodeWithNestedCapacity>;
    /// `GET /gateways`: one page of the nodes with a gateway domain matching `filter`.
    fn gateways<'a>(&'a self, filter: &'a NodeFilter, limit: Limit) -> GridFuture<'a, Page<Node>>;
    /// `GET /contracts`: one page of the contracts matching `filter` (lags the chain).
    fn contracts<'a>(
        &'a self,
        filter: &'a ContractFilter,
        limit: Limit,
    ) -> GridFuture<'a, Page<Contract>>;
    /// `GET /farms`: one page of the farms matching `filter`.
    fn farms<'a>(&'a self, filter: &'a FarmFilter, limit: Limit) -> GridFuture<'a, Page<Farm>>;
    /// `GET /twins`: one page of the twins matching `filter` (RMB reads a node twin's keys here).
    fn twins<'a>(&'a self, filter: &'a TwinFilter, limit: Limit) -> GridFuture<'a, Page<Twin>> {
        let _ = (filter, limit);
        Box::pin(async {
            Err(crate::GridError::NotFound {
                code: crate::ErrorCode::NotFound,
                message: "this proxy lists no twins".into(),
            })
        })
    }
}

/// Lists as one comma-separated query value, as grid-proxy reads them (it also takes the key
/// repeated; [`split_list`] reads both).
mod comma {
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};

    pub fn serialize<T: Serialize, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        let parts: Vec<String> = v
            .iter()
            .map(|x| match serde_json::to_value(x) {
                Ok(serde_json::Value::String(t)) => Ok(t),
                Ok(other) => Ok(other.to_string()),
                Err(e) => Err(serde::ser::Error::custom(e)),
            })
            .collect::<Result<_, _>>()?;
        parts.join(",").serialize(s)
    }

    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        let text = String::deserialize(d)?;
        super::split_list(&text).map_err(serde::de::Error::custom)
    }
}

/// Reads one comma-separated list value: `1,2` → `[1, 2]`, `up,standby` → the statuses.
pub fn split_list<T: serde::de::DeserializeOwned>(text: &str) -> Result<Vec<T>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let v = p
                .parse::<u64>()
                .map(serde_json::Value::from)
                .unwrap_or_else(|_| serde_json::Value::String(p.to_string()));
            serde_json::from_value(v).map_err(|e| format!("{p:?}: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_follow_the_real_rules() {
        let small = Resources {
            cru: 4,
            mru: 8 * GIB,
            sru: 100 * GIB,
            hru: 1000 * GIB,
        };
        let r = reserves(&small);
        assert_eq!(r.mru, 2 * GIB, "2 GiB floor when 10 % is less");
        assert_eq!(r.sru, 20 * GIB);
        assert_eq!(r.hru, 0);
        let big = Resources {
            mru: 64 * GIB,
            ..small
        };
        assert_eq!(
            reserves(&big).mru,
            64 * GIB / 10,
            "10 % when more than 2 GiB"
        );
    }

    #[test]
    fn free_is_total_minus_used_as_the_proxy_counts_reserves_in_used() {
        let total = Resources {
            cru: 8,
            mru: 32 * GIB,
            sru: 500 * GIB,
            hru: 0,
        };
        let used = Resources {
            cru: 2,
            mru: 4 * GIB,
            sru: 50 * GIB,
            hru: 0,
        };
        let f = free_resources(&total, &used);
        assert_eq!(f.cru, 6);
        assert_eq!(f.mru, 28 * GIB);
        assert_eq!(f.sru, 450 * GIB);
        let full = Resources {
            sru: 510 * GIB,
            ..used
        };
        assert_eq!(free_resources(&total, &full).sru, 0, "never below zero");
    }

    #[test]
    fn filters_travel_as_the_proxy_reads_them() {
        let f = NodeFilter {
            status: vec![NodeStatus::Up, NodeStatus::Standby],
            farm_ids: vec![1, 2],
            features: vec!["zmachine-light".into()],
            domain: Some(false),
            ..NodeFilter::default()
        };
        let q = serde_json::to_value(&f).unwrap();
        assert_eq!(q["status"], "up,standby");
        assert_eq!(q["farm_ids"], "1,2");
        assert_eq!(q["features"], "zmachine-light");
        assert_eq!(q["domain"], false);
        let back: NodeFilter = serde_json::from_value(q).unwrap();
        assert_eq!(back, f);
        let c = ContractFilter {
            twin_id: Some(7),
            kind: Some(ContractType::Node),
            state: vec![ContractState::Created, ContractState::GracePeriod],
            ..ContractFilter::default()
        };
        let q = serde_json::to_value(&c).unwrap();
        assert_eq!(q["type"], "node");
        assert_eq!(q["state"], "Created,GracePeriod");
    }

    #[test]
    fn an_empty_domain_means_none() {
        assert_eq!(PublicConfig::default().domain(), None);
        let p = PublicConfig {
            domain: "gent01.grid.tf".into(),
            ..PublicConfig::default()
        };
        assert_eq!(p.domain(), Some("gent01.grid.tf"));
    }
}
