#!/usr/bin/env node
// OpenAPS oref0 as a long-lived decision server for Vigil's closed-loop simulation: JSON lines in, JSON lines out.
//
// First line: {"profile_inputs": {...}}, oref0-get-profile's inputs (pump settings, basals, ISF, carb ratios,
// targets, preferences), turned into an oref0 profile by oref0's own lib/profile. Answer: {"profile": {...}}.
// Every later line: {"clock", "glucose" (newest first), "history" (pump history, newest first), "carbs",
// "currenttemp", "announced_carbs"}. At an announcement the pump's bolus wizard runs first and its bolus joins
// the history; then oref0 computes IOB (lib/iob), meal data and COB (lib/meal), the glucose status
// (lib/glucose-get-last) and its temp basal (lib/determine-basal with lib/basal-set-temp, autosens ratio 1, no
// SMB). Answer: {"bolus", "bolus_history", "rate", "duration", "iob", "cob", "eventualBG", "carbsReq", "reason"};
// no rate/duration = keep the running temp. Any failure is answered as {"error": "..."}.
'use strict';

const readline = require('readline');

function loadOref0() {
  return {
    profile: require('oref0/lib/profile'),
    iob: require('oref0/lib/iob'),
    meal: require('oref0/lib/meal'),
    lastGlucose: require('oref0/lib/glucose-get-last'),
    determineBasal: require('oref0/lib/determine-basal/determine-basal'),
    tempBasalFunctions: require('oref0/lib/basal-set-temp'),
  };
}

// oref0 narrates every decision on stderr; the answer on stdout is what counts.
const quiet = !process.env.VIGIL_OREF0_DEBUG;
if (quiet) {
  console.error = () => {};
}

function makeProfile(oref0, settings) {
  const finalResult = { stdout: '', err: '', return_val: 0 };
  const profile = oref0.profile(finalResult, settings);
  if (profile === -1) {
    throw new Error('oref0 profile rejected the settings: ' + finalResult.err);
  }
  return profile;
}

function clone(value) {
  return JSON.parse(JSON.stringify(value));
}

function computeIob(oref0, profile, request, history) {
  return oref0.iob({ history: clone(history), profile: clone(profile), clock: request.clock });
}

function computeMeal(oref0, profile, request, history, carbs) {
  return oref0.meal({
    history: clone(history),
    profile: clone(profile),
    basalprofile: clone(profile.basalprofile),
    clock: request.clock,
    carbs: clone(carbs),
    glucose: clone(request.glucose),
  });
}

// The pump's bolus wizard: carbs / CR + (BG - target) / ISF - active insulin (a pump counts boluses only),
// never below zero, rounded down to the 0.1 U bolus step.
function wizardBolus(profile, bg, carbsG, bolusIob) {
  const units = carbsG / profile.carb_ratio + (bg - profile.min_bg) / profile.sens - bolusIob;
  return Math.max(0, Math.floor(units * 10) / 10);
}

function takeMealBolus(oref0, profile, request, history) {
  const iob = computeIob(oref0, profile, request, history);
  const bg = request.glucose[0].glucose;
  const bolus = wizardBolus(profile, bg, request.announced_carbs, iob[0].bolusiob);
  if (bolus > 0) {
    history.unshift({ _type: 'Bolus', timestamp: request.clock, amount: bolus, programmed: bolus, duration: 0 });
  }
  return bolus;
}

function decide(oref0, profile, request) {
  const history = request.history.slice();
  const carbs = request.carbs || [];
  const bolus = request.announced_carbs > 0 ? takeMealBolus(oref0, profile, request, history) : 0;
  const iobData = computeIob(oref0, profile, request, history);
  const mealData = computeMeal(oref0, profile, request, history, carbs);
  const glucoseStatus = oref0.lastGlucose(clone(request.glucose));
  const autosens = { ratio: 1 };
  const rT = oref0.determineBasal(
    glucoseStatus, clone(request.currenttemp), iobData, clone(profile), autosens, mealData,
    oref0.tempBasalFunctions, false, null, new Date(request.clock),
  );
  if (rT.error) {
    throw new Error('oref0 determine-basal: ' + rT.error);
  }
  return {
    bolus,
    bolus_history: bolus > 0 ? history[0] : null,
    rate: rT.rate,
    duration: rT.duration,
    iob: iobData[0].iob,
    bolusiob: iobData[0].bolusiob,
    cob: mealData.mealCOB,
    eventualBG: rT.eventualBG,
    carbsReq: rT.carbsReq,
    reason: rT.reason,
  };
}

function answer(state, line) {
  const request = JSON.parse(line);
  if (request.profile_inputs) {
    state.profile = makeProfile(state.oref0, request.profile_inputs);
    return { profile: state.profile };
  }
  if (!state.profile) {
    throw new Error('send {"profile_inputs": ...} before the first decision');
  }
  return decide(state.oref0, state.profile, request);
}

function main() {
  const state = { oref0: null, profile: null };
  let loadError = null;
  try {
    state.oref0 = loadOref0();
  } catch (error) {
    loadError = 'oref0 is not installed next to this driver (' + error.message.split('\n')[0] +
      '): run bash scripts/install-peers.sh node';
  }
  const lines = readline.createInterface({ input: process.stdin, terminal: false });
  lines.on('line', (line) => {
    let reply;
    try {
      if (loadError) {
        throw new Error(loadError);
      }
      reply = answer(state, line);
    } catch (error) {
      reply = { error: String(error && error.message ? error.message : error) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
  });
}

main();
