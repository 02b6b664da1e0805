//! A scalar that remembers how it was computed, so gradients can flow back through it.
//!
//! Each operation below computes its output *and*, right beside it, the local rule that
//! pushes the output's gradient back to its inputs (the chain rule, one link at a time).
//! [`Value::backward`] then visits the graph in reverse topological order, so every node
//! has received all of its gradient before it passes it on.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;
use std::ops::{Add, Div, Mul, Neg, Sub};
use std::rc::Rc;

/// A scalar node of an expression graph, micrograd's `Value` (Karpathy, 2020).
///
/// Cloning a `Value` clones a handle: both handles name the same node, so a value used
/// twice in an expression is one node with two consumers, and its gradient is the sum of
/// what both consumers send back. Taught in notebook `01_backprop`.
#[derive(Clone)]
pub struct Value(Rc<Node>);

/// The local chain rule of the operation that produced a node: given that node (its
/// value, its gradient, its inputs), add each input's share of the gradient to the input.
type BackwardFn = Box<dyn Fn(&Node)>;

struct Node {
    data: Cell<f64>,
    grad: Cell<f64>,
    inputs: Vec<Value>,
    op: &'static str,
    backward: Option<BackwardFn>,
}

impl Value {
    /// A leaf: an input or a parameter, with no inputs of its own.
    pub fn new(data: f64) -> Value {
        Value::from_op(data, "", vec![], None)
    }

    fn from_op(
        data: f64,
        op: &'static str,
        inputs: Vec<Value>,
        backward: Option<BackwardFn>,
    ) -> Value {
        Value(Rc::new(Node {
            data: Cell::new(data),
            grad: Cell::new(0.0),
            inputs,
            op,
            backward,
        }))
    }

    /// The value computed in the forward pass.
    pub fn data(&self) -> f64 {
        self.0.data.get()
    }

    /// Overwrites a leaf's value: this is how an optimizer updates a parameter.
    pub fn set_data(&self, data: f64) {
        self.0.data.set(data);
    }

    /// d(output)/d(self) after [`Value::backward`] was called on `output`.
    pub fn grad(&self) -> f64 {
        self.0.grad.get()
    }

    /// Resets the gradient. Gradients accumulate (`+=`), so a training loop must zero them
    /// before each backward pass, or the new gradient is added to the previous step's.
    pub fn zero_grad(&self) {
        self.0.grad.set(0.0);
    }

    /// The name of the operation that produced this node ("" for a leaf).
    pub fn op(&self) -> &'static str {
        self.0.op
    }

    /// The nodes this one was computed from.
    pub fn inputs(&self) -> &[Value] {
        &self.0.inputs
    }

    /// The node's identity: equal for two handles of one node, different for two nodes
    /// with the same value. A backward pass keys its gradients by it (notebook
    /// `01_backprop`, §2, writes one).
    pub fn id(&self) -> usize {
        Rc::as_ptr(&self.0) as usize
    }

    fn add_grad(&self, delta: f64) {
        self.0.grad.set(self.0.grad.get() + delta);
    }

    /// `self + other`: the gradient passes through unchanged to both inputs.
    pub fn add(&self, other: &Value) -> Value {
        let backward = |out: &Node| {
            out.inputs[0].add_grad(out.grad.get());
            out.inputs[1].add_grad(out.grad.get());
        };
        let inputs = vec![self.clone(), other.clone()];
        Value::from_op(
            self.data() + other.data(),
            "+",
            inputs,
            Some(Box::new(backward)),
        )
    }

    /// `self * other`: each input receives the gradient scaled by the *other* input.
    pub fn mul(&self, other: &Value) -> Value {
        let backward = |out: &Node| {
            let (a, b) = (&out.inputs[0], &out.inputs[1]);
            a.add_grad(b.data() * out.grad.get());
            b.add_grad(a.data() * out.grad.get());
        };
        let inputs = vec![self.clone(), other.clone()];
        Value::from_op(
            self.data() * other.data(),
            "*",
            inputs,
            Some(Box::new(backward)),
        )
    }

    /// `self^k` for a constant exponent: d/dx x^k = k x^(k-1).
    pub fn pow(&self, k: f64) -> Value {
        let backward = move |out: &Node| {
            let x = &out.inputs[0];
            x.add_grad(k * x.data().powf(k - 1.0) * out.grad.get());
        };
        Value::from_op(
            self.data().powf(k),
            "pow",
            vec![self.clone()],
            Some(Box::new(backward)),
        )
    }

    /// `e^self`: its own derivative, so the backward rule reuses the output.
    pub fn exp(&self) -> Value {
        let backward = |out: &Node| {
            out.inputs[0].add_grad(out.data.get() * out.grad.get());
        };
        Value::from_op(
            self.data().exp(),
            "exp",
            vec![self.clone()],
            Some(Box::new(backward)),
        )
    }

    /// Natural logarithm: d/dx ln x = 1/x.
    pub fn log(&self) -> Value {
        let backward = |out: &Node| {
            let x = &out.inputs[0];
            x.add_grad(out.grad.get() / x.data());
        };
        Value::from_op(
            self.data().ln(),
            "log",
            vec![self.clone()],
            Some(Box::new(backward)),
        )
    }

    /// Hyperbolic tangent: d/dx tanh x = 1 - tanh² x, again from the output.
    pub fn tanh(&self) -> Value {
        let backward = |out: &Node| {
            let t = out.data.get();
            out.inputs[0].add_grad((1.0 - t * t) * out.grad.get());
        };
        Value::from_op(
            self.data().tanh(),
            "tanh",
            vec![self.clone()],
            Some(Box::new(backward)),
        )
    }

    /// `max(0, self)`: the gradient flows only where the input was positive.
    pub fn relu(&self) -> Value {
        let backward = |out: &Node| {
            if out.data.get() > 0.0 {
                out.inputs[0].add_grad(out.grad.get());
            }
        };
        Value::from_op(
            self.data().max(0.0),
            "relu",
            vec![self.clone()],
            Some(Box::new(backward)),
        )
    }

    /// Backpropagation: adds d(self)/d(leaf) to the gradient of every leaf that `self`
    /// depends on, and sets d(self)/d(node) on every intermediate node.
    ///
    /// A node may only pass its gradient on once it has received the gradient of *every*
    /// consumer; visiting nodes in reverse topological order guarantees that. Leaves (the
    /// parameters) accumulate across calls, as in PyTorch; intermediate nodes start from
    /// zero, so a second call on the same graph adds exactly one more gradient.
    pub fn backward(&self) {
        let order = self.topological_order();
        for node in order.iter().filter(|n| !n.inputs().is_empty()) {
            node.zero_grad();
        }
        self.0.grad.set(1.0);
        for node in order.iter().rev() {
            if let Some(backward) = &node.0.backward {
                backward(&node.0);
            }
        }
    }

    /// The graph as a tape, the record autodiff libraries keep: one line per node in
    /// topological order, `#i = op(#j, #k)`, with its value and gradient.
    pub fn tape(&self) -> String {
        let order = self.topological_order();
        let id = |v: &Value| {
            order
                .iter()
                .position(|n| n.id() == v.id())
                .unwrap_or(usize::MAX)
        };
        let line = |(i, node): (usize, &Value)| {
            let inputs: Vec<String> = node
                .inputs()
                .iter()
                .map(|v| format!("#{}", id(v)))
                .collect();
            let formula = if node.inputs().is_empty() {
                "leaf".to_owned()
            } else {
                format!("{}({})", node.op(), inputs.join(", "))
            };
            format!(
                "#{i:<3} = {formula:<16} data {:>10.4}   grad {:>10.4}\n",
                node.data(),
                node.grad()
            )
        };
        order.iter().enumerate().map(line).collect()
    }

    /// Every node reachable from `self`, each after all of its inputs. Iterative
    /// depth-first search, so deep graphs (long sums) cannot overflow the stack.
    fn topological_order(&self) -> Vec<Value> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        // (node, whether its inputs have already been pushed)
        let mut stack = vec![(self.clone(), false)];
        while let Some((node, expanded)) = stack.pop() {
            if expanded {
                order.push(node);
            } else if seen.insert(node.id()) {
                stack.push((node.clone(), true));
                for input in node.inputs().iter().rev() {
                    stack.push((input.clone(), false));
                }
            }
        }
        order
    }
}

/// Dropping a node drops its inputs, and theirs: done recursively, a graph as deep as a
/// long sum would overflow the stack, so the inputs are released with an explicit stack.
impl Drop for Node {
    fn drop(&mut self) {
        let mut pending = std::mem::take(&mut self.inputs);
        while let Some(value) = pending.pop() {
            if let Ok(mut node) = Rc::try_unwrap(value.0) {
                pending.append(&mut node.inputs);
            }
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Value(data={:.4}, grad={:.4})", self.data(), self.grad())
    }
}

impl From<f64> for Value {
    fn from(data: f64) -> Value {
        Value::new(data)
    }
}

/// Implements an arithmetic operator for every mix of `Value`, `&Value` and `f64`
/// operands, in terms of one method taking `(&Value, &Value)`.
macro_rules! binary_operator {
    ($trait:ident, $method:ident, $body:expr) => {
        impl $trait<&Value> for &Value {
            type Output = Value;
            fn $method(self, rhs: &Value) -> Value {
                let f: fn(&Value, &Value) -> Value = $body;
                f(self, rhs)
            }
        }
        impl $trait<Value> for Value {
            type Output = Value;
            fn $method(self, rhs: Value) -> Value {
                (&self).$method(&rhs)
            }
        }
        impl $trait<&Value> for Value {
            type Output = Value;
            fn $method(self, rhs: &Value) -> Value {
                (&self).$method(rhs)
            }
        }
        impl $trait<Value> for &Value {
            type Output = Value;
            fn $method(self, rhs: Value) -> Value {
                self.$method(&rhs)
            }
        }
        impl $trait<f64> for Value {
            type Output = Value;
            fn $method(self, rhs: f64) -> Value {
                (&self).$method(&Value::new(rhs))
            }
        }
        impl $trait<f64> for &Value {
            type Output = Value;
            fn $method(self, rhs: f64) -> Value {
                self.$method(&Value::new(rhs))
            }
        }
        impl $trait<&Value> for f64 {
            type Output = Value;
            fn $method(self, rhs: &Value) -> Value {
                (&Value::new(self)).$method(rhs)
            }
        }
        impl $trait<Value> for f64 {
            type Output = Value;
            fn $method(self, rhs: Value) -> Value {
                (&Value::new(self)).$method(&rhs)
            }
        }
    };
}

binary_operator!(Add, add, |a, b| Value::add(a, b));
binary_operator!(Mul, mul, |a, b| Value::mul(a, b));
// Subtraction and division are compositions, so they need no backward rule of their own.
binary_operator!(Sub, sub, |a, b| Value::add(
    a,
    &Value::mul(b, &Value::new(-1.0))
));
binary_operator!(Div, div, |a, b| Value::mul(a, &b.pow(-1.0)));

impl Neg for &Value {
    type Output = Value;
    fn neg(self) -> Value {
        self * -1.0
    }
}

impl Neg for Value {
    type Output = Value;
    fn neg(self) -> Value {
        -&self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central finite difference of `f` at `x`, the reference each rule is checked against.
    fn numeric_grad(f: impl Fn(f64) -> f64, x: f64) -> f64 {
        let h = 1e-6;
        (f(x + h) - f(x - h)) / (2.0 * h)
    }

    fn assert_close(got: f64, want: f64) {
        assert!(
            (got - want).abs() <= 1e-6 * (1.0 + want.abs()),
            "got {got}, want {want}"
        );
    }

    #[test]
    fn every_unary_rule_matches_finite_differences() {
        type Pair = (fn(&Value) -> Value, fn(f64) -> f64);
        let rules: [Pair; 6] = [
            (|v| v.pow(3.0), |x| x.powi(3)),
            (|v| v.exp(), f64::exp),
            (|v| v.log(), f64::ln),
            (|v| v.tanh(), f64::tanh),
            (|v| v.relu(), |x| x.max(0.0)),
            (|v| 1.0 / v, |x| 1.0 / x),
        ];
        for (op, reference) in rules {
            for x in [-0.8, 0.3, 1.7, 2.5] {
                if x < 0.0 && reference(x).is_nan() {
                    continue; // log of a negative number
                }
                let v = Value::new(x);
                op(&v).backward();
                assert_close(v.grad(), numeric_grad(reference, x));
            }
        }
    }

    #[test]
    fn gradients_accumulate_over_every_use() {
        // y = x*x + x uses x three times: dy/dx = 2x + 1.
        let x = Value::new(3.0);
        let y = &x * &x + &x;
        y.backward();
        assert_eq!(y.data(), 12.0);
        assert_eq!(x.grad(), 7.0);
    }

    #[test]
    fn a_second_backward_through_the_same_graph_adds_exactly_one_gradient() {
        let (x, w) = (Value::new(0.5), Value::new(-1.5));
        let y = (&x * &w).tanh();
        y.backward();
        let once = w.grad();
        y.backward();
        assert!(
            (w.grad() - 2.0 * once).abs() < 1e-15,
            "{} vs 2 × {once}",
            w.grad()
        );
    }

    #[test]
    fn a_shared_subexpression_is_visited_once() {
        // b = a*a is used twice; a wrong order (or visiting b twice) would miscount.
        let a = Value::new(-2.0);
        let b = &a * &a;
        let c = &b * &b; // a^4
        c.backward();
        assert_eq!(c.data(), 16.0);
        assert_eq!(a.grad(), 4.0 * (-2.0f64).powi(3));
    }

    #[test]
    fn the_tape_lists_each_node_once_after_its_inputs() {
        let x = Value::new(2.0);
        let y = (&x * &x).relu();
        y.backward();
        let tape = y.tape();
        let lines: Vec<&str> = tape.lines().collect();
        assert_eq!(lines.len(), 3, "{tape}");
        assert!(
            lines[0].starts_with("#0   = leaf") && lines[0].contains("grad     4.0000"),
            "{tape}"
        );
        assert!(lines[1].starts_with("#1   = *(#0, #0)"), "{tape}");
        assert!(lines[2].starts_with("#2   = relu(#1)"), "{tape}");
    }

    #[test]
    fn two_handles_of_one_node_share_its_id() {
        let (a, b) = (Value::new(1.0), Value::new(1.0));
        assert_eq!(a.id(), a.clone().id());
        assert_ne!(a.id(), b.id());
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let x = Value::new(1.0);
        let sum = (0..200_000).fold(Value::new(0.0), |acc, _| acc + &x);
        sum.backward();
        assert_eq!(x.grad(), 200_000.0);
    }

    #[test]
    fn subtraction_division_and_negation_compose_correctly() {
        let (a, b) = (Value::new(5.0), Value::new(2.0));
        let y = (&a - &b) / &b + -&a; // (a-b)/b - a
        y.backward();
        assert_close(y.data(), 1.5 - 5.0);
        assert_close(a.grad(), 1.0 / 2.0 - 1.0);
        assert_close(b.grad(), -5.0 / 4.0);
    }
}
