// Page shell: signs in from the token and mounts both micro-frontends (or one: `?mfe=accounts`
// or `?mfe=transactions`, as another shell embedding only that one would). Staff pick a
// customer (their assigned ones are suggested; the bridge refuses the others).

import { claims, isStaff, token } from "./session.mjs";
import { mountAccounts } from "./accounts.mjs";
import { mountTransactions } from "./transactions.mjs";

if (!token) {
  document.getElementById("signin").hidden = false;
} else {
  document.getElementById("who").textContent = `${isStaff ? "staff" : "customer"} ${claims.sub}`;
  const only = new URLSearchParams(location.search).get("mfe");
  const mounted = [];
  for (const [name, mount] of [["accounts", mountAccounts], ["transactions", mountTransactions]]) {
    const section = document.getElementById(`${name}-mfe`);
    if (only && only !== name) section.hidden = true;
    else mounted.push(mount(section));
  }
  const openCustomer = (customer) => mounted.forEach((mfe) => mfe.open(customer));
  if (isStaff) {
    const picker = document.getElementById("customer-picker");
    picker.hidden = false;
    const input = document.getElementById("customer");
    for (const c of [].concat(claims.customers || [])) {
      const option = document.createElement("option");
      option.value = c;
      document.getElementById("assigned").append(option);
    }
    document.getElementById("open-customer").addEventListener("click", () => input.value && openCustomer(input.value.trim()));
  } else {
    openCustomer(claims.sub);
  }
}
