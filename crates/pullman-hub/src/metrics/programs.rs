//! The supervisor's families: restarts and running instances per program.

use super::{Exposition, Kind, Source};
use crate::programs::{ProgramHealth, Supervisor};

impl Source for Supervisor {
    fn render(&self, out: &mut Exposition) {
        let programs = self.status();
        out.family(
            "pullman_program_restarts_total",
            Kind::Counter,
            "Restarts of a supervised program's instances since it was last (re)applied.",
        );
        for p in &programs {
            out.sample(
                "pullman_program_restarts_total",
                &[("program", &p.name)],
                p.restarts as f64,
            );
        }
        out.family(
            "pullman_program_up",
            Kind::Gauge,
            "Instances of a supervised program running now.",
        );
        for p in &programs {
            out.sample(
                "pullman_program_up",
                &[("program", &p.name)],
                f64::from(p.running),
            );
        }
        out.family(
            "pullman_program_failed",
            Kind::Gauge,
            "1 when a program restarted more often than its intensity allows and was given up.",
        );
        for p in &programs {
            let failed = p.state == ProgramHealth::Failed;
            out.sample(
                "pullman_program_failed",
                &[("program", &p.name)],
                f64::from(u8::from(failed)),
            );
        }
    }
}
