"Shared set-up for the bench scripts: the reference case and a timer."
import os, time, statistics, torch, torch.nn as nn

def reference_case(train_steps=200, seed=0):
    "The tanh MLP 64-128-128-10 on sklearn digits (1,797 samples, full batch, float32), briefly trained with Adam."
    from localgeom_nb.data import digits
    from localgeom_nb.models import MLP
    torch.manual_seed(seed)
    X, y = digits()
    model = MLP(64, (128, 128), 10, act="tanh", seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(train_steps):
        opt.zero_grad(); nn.functional.cross_entropy(model(X), y).backward(); opt.step()
    return model.eval(), nn.CrossEntropyLoss(), (X, y)

def timeit(f, repeats=5, warmup=1):
    "Median wall time of `f()` over `repeats` runs, and its last result."
    for _ in range(warmup): out = f()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter(); out = f(); ts.append(time.perf_counter() - t0)
    return statistics.median(ts), out

def header(title):
    print(f"\n## {title}\n(torch {torch.__version__}, {torch.get_num_threads()} threads, CPU={os.cpu_count()})\n")

def table(rows, cols):
    "Print rows (dicts) as a markdown table."
    print("| " + " | ".join(cols) + " |"); print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols) + " |")

class BasicBlock(nn.Module):
    "PyHessian's ResNet basic block: conv-BN-ReLU-conv-BN, a 1x1 conv + BN shortcut when the shape changes, ReLU."
    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        res = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += res
        return self.relu(out)

def resnet20(num_classes=10, width=16, seed=0):
    "PyHessian's CIFAR ResNet-20 (3 stages of 3 basic blocks, widths 16/32/64, global average pool, linear head), in eval mode."
    torch.manual_seed(seed)
    layers, cin = [nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)], width
    for i, w in enumerate((width, 2 * width, 4 * width)):
        for j in range(3):
            layers.append(BasicBlock(cin, w, stride=2 if i and not j else 1)); cin = w
    m = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
    for mod in m.modules():                       # statistics and affine parameters as after some training
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1); mod.running_var.uniform_(0.5, 1.5)
            mod.weight.data.uniform_(0.5, 1.5); mod.bias.data.normal_(0, 0.1)
    return m.eval()
