//! Which sub-networks a training step trains: the sandwich rule over the whole space from
//! the first step (BigNAS), or Once-for-All's progressive shrinking (Cai, Gan, Wang, Zhang
//! and Han, "Once-for-All", ICLR 2020), which trains the largest network alone first, then
//! lets the kernels vary, then the depths, then every other choice.
//!
//! Each phase is a narrowed copy of the space (the choices not yet elastic fixed at the
//! largest sub-network's), so a step samples its random sub-networks and takes its
//! smallest from that copy: every genome it trains belongs to the full space.

use std::fmt;
use std::str::FromStr;

use kiln_space::{Genome, Space};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{largest, smallest};

/// How a supernet's training chooses the sub-networks of each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// Every step: the largest, the smallest and random sub-networks of the whole space.
    #[default]
    Sandwich,
    /// The sandwich rule over a space that widens with training: the largest alone for
    /// the first 30% of steps, kernels elastic to 50%, depths too to 75%, then the whole
    /// space. The shares follow Once-for-All's ImageNet schedule (full network 180 epochs,
    /// elastic kernel 120, elastic depth 25 + 120, elastic width 25 + 120: 31%, 20%, 25%,
    /// 25%), rounded; one learning-rate schedule runs over all of them.
    Progressive,
}

impl Schedule {
    /// The sandwich rule, the default (serialized configs leave it out, so a supernet's
    /// settings read and hash as they did before schedules existed).
    pub fn is_sandwich(&self) -> bool {
        *self == Schedule::Sandwich
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Schedule::Sandwich => "sandwich",
            Schedule::Progressive => "progressive",
        })
    }
}

impl FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sandwich" => Ok(Schedule::Sandwich),
            "progressive" => Ok(Schedule::Progressive),
            other => Err(format!(
                "unknown schedule `{other}`: `sandwich` or `progressive`"
            )),
        }
    }
}

/// What varies in a phase of progressive shrinking, in the order they open up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Elastic {
    /// Nothing: the largest sub-network only.
    Nothing,
    /// Each block's depthwise kernel.
    Kernel,
    /// Kernels and each stage's depth.
    Depth,
    /// Every choice of the space.
    All,
}

/// Where each phase of [`Schedule::Progressive`] ends, as a share of all steps.
const PROGRESSIVE_ENDS: [(Elastic, f64); 3] = [
    (Elastic::Nothing, 0.30),
    (Elastic::Kernel, 0.50),
    (Elastic::Depth, 0.75),
];

/// A training run's phases: each one's narrowed space and its smallest sub-network.
pub(crate) struct Phases {
    spaces: Vec<(Elastic, Space, Genome)>,
}

impl Phases {
    pub(crate) fn new(space: &Space, schedule: Schedule) -> Phases {
        let phases = match schedule {
            Schedule::Sandwich => vec![Elastic::All],
            Schedule::Progressive => {
                vec![
                    Elastic::Nothing,
                    Elastic::Kernel,
                    Elastic::Depth,
                    Elastic::All,
                ]
            }
        };
        let spaces = phases
            .into_iter()
            .map(|e| {
                let narrowed = narrow(space, e);
                let small = smallest(&narrowed);
                (e, narrowed, small)
            })
            .collect();
        Phases { spaces }
    }

    /// What is elastic at 0-based `step` of `total`.
    pub(crate) fn at(&self, step: usize, total: usize) -> Elastic {
        if let [(only, _, _)] = self.spaces.as_slice() {
            // one phase (the sandwich rule): the same throughout
            return *only;
        }
        let share = step as f64 / total.max(1) as f64;
        PROGRESSIVE_ENDS
            .iter()
            .find(|(_, end)| share < *end)
            .map_or(Elastic::All, |(e, _)| *e)
    }

    /// The students of a step in phase `e`: its smallest sub-network, then `random` drawn
    /// from its narrowed space with `rng`; none while only the largest trains. For
    /// [`Schedule::Sandwich`] these are the whole space's smallest and random draws, as
    /// before schedules existed (a seed gives the same weights).
    pub(crate) fn students(&self, e: Elastic, random: usize, rng: &mut impl Rng) -> Vec<Genome> {
        if e == Elastic::Nothing {
            return Vec::new();
        }
        let Some((_, space, small)) = self.spaces.iter().find(|(p, _, _)| *p == e) else {
            return Vec::new();
        };
        let mut students = vec![small.clone()];
        students.extend((0..random).map(|_| Genome::sample(space, rng)));
        students
    }
}

/// `space` with every choice not elastic in `e` fixed at the largest sub-network's.
fn narrow(space: &Space, e: Elastic) -> Space {
    if e == Elastic::All {
        return space.clone();
    }
    let big = largest(space);
    let mut s = space.clone();
    s.stem.widths = vec![big.stem_width];
    s.head.widths = vec![big.head_width];
    if let Some(r) = &mut s.resolution {
        *r = vec![big.resolution.unwrap_or(r[0])];
    }
    if let Some(p) = &mut s.precision {
        p.truncate(1);
    }
    for (stage, gene) in s.stages.iter_mut().zip(&big.stages) {
        let block = &gene.blocks[0];
        stage.widths = vec![gene.width];
        stage.expand = vec![block.expand];
        stage.se = vec![block.se];
        stage.activations = vec![block.activation];
        if e < Elastic::Depth {
            stage.depth = vec![gene.blocks.len()];
        }
        if e < Elastic::Kernel {
            stage.kernels = vec![block.kernel];
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SupernetConfig;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn mobile() -> Space {
        Space::from_toml(include_str!("../../../spaces/mobile.toml"), "m").unwrap()
    }

    #[test]
    fn progressive_phases_open_kernel_then_depth_then_all() {
        let p = Phases::new(&mobile(), Schedule::Progressive);
        let at = |share: f64| p.at((share * 1000.0) as usize, 1000);
        assert_eq!(at(0.0), Elastic::Nothing);
        assert_eq!(at(0.29), Elastic::Nothing);
        assert_eq!(at(0.30), Elastic::Kernel);
        assert_eq!(at(0.6), Elastic::Depth);
        assert_eq!(at(0.8), Elastic::All);
        assert_eq!(p.at(999, 1000), Elastic::All);
        let s = Phases::new(&mobile(), Schedule::Sandwich);
        assert_eq!(s.at(0, 1000), Elastic::All);
    }

    #[test]
    fn each_phase_varies_only_what_it_opens_and_stays_in_the_space() {
        let space = mobile();
        let big = largest(&space);
        let p = Phases::new(&space, Schedule::Progressive);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        assert!(p.students(Elastic::Nothing, 2, &mut rng).is_empty());
        let (mut kernels, mut depths, mut widths) = (false, false, false);
        for e in [Elastic::Kernel, Elastic::Depth, Elastic::All] {
            for _ in 0..50 {
                let students = p.students(e, 2, &mut rng);
                assert_eq!(students.len(), 3);
                for g in &students {
                    g.validate(&space, "student").unwrap();
                    let same_depth = g
                        .stages
                        .iter()
                        .zip(&big.stages)
                        .all(|(a, b)| a.blocks.len() == b.blocks.len());
                    let same_kernels = g
                        .stages
                        .iter()
                        .flat_map(|s| &s.blocks)
                        .all(|b| b.kernel == 7);
                    let same_rest = g.head_width == big.head_width
                        && g.stem_width == big.stem_width
                        && g.stages.iter().zip(&big.stages).all(|(a, b)| {
                            a.width == b.width && a.blocks.iter().all(|x| x.expand == 6 && x.se)
                        });
                    match e {
                        Elastic::Kernel => assert!(same_depth && same_rest),
                        Elastic::Depth => assert!(same_rest),
                        _ => {}
                    }
                    kernels |= e == Elastic::Kernel && !same_kernels;
                    depths |= e == Elastic::Depth && !same_depth;
                    widths |= e == Elastic::All && !same_rest;
                }
            }
        }
        assert!(kernels && depths && widths, "each phase opens its choice");
    }

    #[test]
    fn sandwich_students_are_the_whole_space_draws() {
        let space = mobile();
        let p = Phases::new(&space, Schedule::Sandwich);
        let (mut a, mut b) = (ChaCha8Rng::seed_from_u64(3), ChaCha8Rng::seed_from_u64(3));
        let students = p.students(Elastic::All, 2, &mut a);
        assert_eq!(students[0], smallest(&space));
        assert_eq!(students[1], Genome::sample(&space, &mut b));
        assert_eq!(students[2], Genome::sample(&space, &mut b));
    }

    /// A progressive supernet trains through every phase, says so in its settings (a
    /// sandwich one's settings do not name a schedule, so their hashes stay), and is not
    /// resumed to more epochs or under the other schedule.
    #[test]
    fn a_progressive_supernet_trains_records_its_schedule_and_keeps_its_epochs() {
        let data = crate::tests::data();
        let dir = tempfile::tempdir().unwrap();
        let config = SupernetConfig {
            schedule: Schedule::Progressive,
            ..crate::tests::one_epoch(16)
        };
        let (_, metrics) = crate::tests::train_in(dir.path(), &data, &config, false).unwrap();
        assert_eq!(metrics.epochs.len(), 1);
        let found = crate::identity(dir.path()).unwrap();
        assert_eq!(found.config.schedule, Schedule::Progressive);
        let text = serde_json::to_string(&found.config).unwrap();
        assert!(text.contains("\"schedule\":\"progressive\""), "{text}");
        let sandwich = serde_json::to_string(&crate::tests::one_epoch(16)).unwrap();
        assert!(!sandwich.contains("schedule"), "{sandwich}");
        for (other, says) in [
            (
                SupernetConfig {
                    epochs: 2,
                    ..config.clone()
                },
                "epochs 1, not 2",
            ),
            (
                SupernetConfig {
                    schedule: Schedule::Sandwich,
                    ..config.clone()
                },
                "schedule progressive, not sandwich",
            ),
        ] {
            let Err(e) = crate::tests::train_in(dir.path(), &data, &other, true) else {
                panic!("resumed with {other:?}")
            };
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn schedule_names_parse_and_unknown_ones_are_refused() {
        assert_eq!("progressive".parse(), Ok(Schedule::Progressive));
        assert_eq!("sandwich".parse(), Ok(Schedule::Sandwich));
        let e = "ofa".parse::<Schedule>().unwrap_err();
        assert!(e.contains("`ofa`") && e.contains("progressive"), "{e}");
    }
}
